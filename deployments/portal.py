"""The customer portal on Ray Serve, under the route prefix ``/portal``.

The FastAPI app is built inside the replica (``__serve_build_asgi_app__``), so
importing this module does no work; its lifespan opens the PostgreSQL pool and
the OIDC client. The dashboard's flap risk comes from the ``predictor`` app
through a deployment handle, as the API's predictions do.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from bgp_orchestrator.portal.app import create_portal_app
from bgp_orchestrator.settings import Settings
from deployments.api import PredictorHandle


@serve.deployment(name="Portal")
@serve.ingress()
class Portal:
    def __init__(self) -> None:
        self._settings = Settings()
        self._app: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        self._app = create_portal_app(self._settings, predictor=PredictorHandle())
        return self._app

    async def check_health(self) -> None:
        """Liveness: the app was built and its lifespan opened the database handle."""
        if self._app is None or not hasattr(self._app.state, "database"):
            raise RuntimeError("the portal has not finished starting")


app = Portal.bind()  # type: ignore[attr-defined]
