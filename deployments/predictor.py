"""Flap prediction on Ray Serve: onnxruntime behind dynamic batching.

Single-session calls (``predict_one``) are gathered by ``@serve.batch`` into
one ONNX run; calls for many sessions (``predict_many``, or ``predict_json``
for the API, which sends the encoded answers on as they are) are a batch
already.
The model follows the registry's active version (polled every
``BGPO_MODEL_POLL_S``) unless ``user_config`` pins one::

    user_config: {model_version: 7}      # serve v7 whatever is active
    user_config: {model_version: null}   # follow the registry (default)

``reconfigure`` loads the pinned version beside the current one and swaps it
in; requests in flight finish on the model they started with, so a switch
fails no request. ``check_health`` fails while no model is loaded, so Serve
does not report the app healthy before it can answer.

The periodic jobs (materialization, anomaly fitting) run in the scheduler
app (``deployments/scheduler.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from ray import serve

from bgp_orchestrator.flaps.feature_store import open_store
from bgp_orchestrator.flaps.predictor import FlapPredictor as Core
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import open_database

log = logging.getLogger(__name__)


def _replica_cpus() -> int:
    """The CPUs this replica reserved (onnxruntime's thread count)."""
    try:
        import ray

        assigned = ray.get_runtime_context().get_assigned_resources()  # type: ignore[no-untyped-call]
        cpus = float(assigned.get("CPU", 1.0))
    except Exception:
        cpus = 1.0
    return max(1, round(cpus))


@serve.deployment(name="FlapPredictor")
class FlapPredictor:
    def __init__(self) -> None:
        import redis.asyncio as aioredis

        settings = Settings()
        if settings.redis_url is None:
            raise RuntimeError("BGPO_REDIS_URL must be set")
        redis_url = settings.redis_url.get_secret_value()
        self._settings = settings
        self._db = open_database(settings)
        self._redis = aioredis.from_url(redis_url)
        self.core = Core(
            open_store(settings, redis_url),
            settings.data_dir / "model-cache",
            threads=_replica_cpus(),
            redis=self._redis,
            settings=settings,
        )
        self._pinned: int | None = None
        self._tasks = [asyncio.get_event_loop().create_task(self._follow())]

    async def reconfigure(self, config: dict[str, Any]) -> None:
        version = config.get("model_version")
        self._pinned = int(version) if version is not None else None
        async with self._db.connection() as conn:
            await self.core.load(conn, self._pinned)

    async def _follow(self) -> None:
        """Keep the model and the feature copy current."""
        while True:
            try:
                async with self._db.connection() as conn:
                    await self.core.load(conn, self._pinned)
                await self.core.refresh_features()
            except Exception as exc:  # keep following; the status shows the error
                self.core.status.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("predictor refresh failed: %s", exc)
            await asyncio.sleep(self._settings.model_poll_s)

    async def check_health(self) -> None:
        if self.core.model is None:
            raise RuntimeError(
                f"no flap model loaded ({self.core.status.last_error or 'none is active'})"
            )
        for task in self._tasks:
            if task.done():
                raise RuntimeError(f"a predictor loop stopped: {task.exception()!r}")

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.002)
    async def predict_one(self, session_ids: list[str]) -> list[dict[str, Any]]:
        return await self.core.predict(session_ids)

    async def predict_many(self, session_ids: list[str]) -> list[dict[str, Any]]:
        return await self.core.predict(session_ids)

    async def predict_json(self, session_ids: list[str]) -> bytes:
        """The answers for many sessions as a JSON array (what the API sends on)."""
        return await self.core.predict_json(session_ids)

    async def status(self) -> dict[str, Any]:
        s = self.core.status
        return {
            "replica": serve.get_replica_context().replica_tag,
            "pid": os.getpid(),
            "version": s.version,
            "pinned": self._pinned,
            "last_error": s.last_error,
            "cached_sessions": s.cached_sessions,
            "swaps": s.swaps,
        }

    async def __del__(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._db.close()
        await self._redis.aclose()


app = FlapPredictor.bind()  # type: ignore[attr-defined]
