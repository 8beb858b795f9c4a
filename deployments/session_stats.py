"""Live per-session window stats on Ray Serve: flap features and metric series from the stream.

The replica runs :class:`bgp_orchestrator.sessionstats.SessionStatsWorker` as a
background task: every closed window's metric points go to the metric store
through a :class:`~bgp_orchestrator.anomaly.writer.BackgroundMetricWriter`, its
flap features to the offline store (the scheduled materialization moves them
to Redis). One replica: a session's updates are spread over every partition of
``bgp.updates``, so one consumer must read them all. Serve restarts a replica
whose loop died (``check_health``); the new one replays from the last commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from ray import serve

from bgp_orchestrator.sessionstats import SessionStatsWorker
from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0
WRITER_CLOSE_TIMEOUT_S = 20.0


@serve.deployment(name="SessionStats")
class SessionStats:
    def __init__(self) -> None:
        from bgp_orchestrator.anomaly.store import open_metric_store
        from bgp_orchestrator.anomaly.writer import BackgroundMetricWriter

        settings = Settings()
        if settings.kafka_bootstrap_servers is None:
            raise RuntimeError("BGPO_KAFKA_BOOTSTRAP_SERVERS must be set")
        self._store = open_metric_store(settings)
        self._writer = BackgroundMetricWriter(self._store)
        self.worker = SessionStatsWorker(
            settings,
            self._writer,
            settings.kafka_bootstrap_servers,
            name=f"session-stats-{serve.get_replica_context().replica_tag}",
        )
        self._task = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        self._writer.start()  # needs the running loop: started here, not in __init__
        await self.worker.run()

    async def check_health(self) -> None:
        if self._task.done():
            error = None if self._task.cancelled() else self._task.exception()
            raise RuntimeError(f"the session stats loop stopped: {error!r}")

    async def stats(self) -> dict[str, Any]:
        return {
            **self.worker.stats.as_dict(),
            "metric_writer": dataclasses.asdict(self._writer.stats()),
            "metric_store": self._store.describe(),
        }

    async def __del__(self) -> None:
        self.worker.stop()
        try:
            await asyncio.wait_for(self._task, timeout=STOP_TIMEOUT_S)
        except Exception:
            log.warning("session stats loop did not stop cleanly", exc_info=True)
        try:
            await self._writer.close(timeout=WRITER_CLOSE_TIMEOUT_S)
        except Exception:
            log.warning("metric writer did not close cleanly", exc_info=True)
        await self._store.close()


app = SessionStats.bind()  # type: ignore[attr-defined]
