"""The peering API on Ray Serve: the core FastAPI app behind a Serve ingress.

The FastAPI app is built inside the replica (``__serve_build_asgi_app__``),
so importing this module does no work; the app's lifespan opens the
PostgreSQL pool and closes it on shutdown.
"""

from __future__ import annotations

from typing import Any

import orjson
from ray import serve

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.settings import Settings


class PredictorHandle:
    """The API's and the portal's way to the FlapPredictor of the ``predictor`` app."""

    def __init__(self) -> None:
        self._handle: Any = None

    def _get(self) -> Any:
        if self._handle is None:
            try:
                self._handle = serve.get_deployment_handle("FlapPredictor", app_name="predictor")
            except Exception as exc:  # the app is not deployed (yet)
                raise ServiceUnavailable(
                    "predictor-unavailable", f"the predictor app is not running: {exc}"
                ) from exc
        return self._handle

    async def predict_json(self, session_ids: list[str]) -> bytes:
        handle = self._get()
        if len(session_ids) == 1:  # batched with other callers' single sessions
            return orjson.dumps([await handle.predict_one.remote(session_ids[0])])
        answer: bytes = await handle.predict_json.remote(session_ids)
        return answer


@serve.deployment(name="PeeringAPI")
@serve.ingress()
class PeeringAPI:
    def __init__(self) -> None:
        self._settings = Settings()
        self._app: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        self._app = create_app(self._settings)
        self._app.state.predictor = PredictorHandle()
        return self._app

    async def check_health(self) -> None:
        """Liveness: the app was built and its lifespan opened the database handle.

        PostgreSQL being down is not a reason to restart the replica: the API
        answers 503 and /readyz fails until the database is back.
        """
        if self._app is None or not hasattr(self._app.state, "database"):
            raise RuntimeError("the peering API has not finished starting")


app = PeeringAPI.bind()  # type: ignore[attr-defined]
