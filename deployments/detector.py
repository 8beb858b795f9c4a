"""Conflict detection on Ray Serve: each replica is one member of the Kafka consumer group.

The replica runs :class:`bgp_orchestrator.detection.worker.DetectionWorker` as a
background task. Serve restarts a replica whose loop died (``check_health``);
the consumer group hands its partitions to the others meanwhile, and the
checkpoints let whoever takes them over resume without losing state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve
from ray.util import metrics

from bgp_orchestrator.api.app import database_for
from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
from bgp_orchestrator.detection.worker import DetectionWorker, WorkerStats
from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)


class _Exporter:
    """Mirrors the worker's counters into Ray's metrics (scraped with the cluster's)."""

    def __init__(self) -> None:
        self.updates = metrics.Counter("bgpo_detector_updates", "Updates run through the detectors")
        self.records = metrics.Counter("bgpo_detector_records", "Kafka records consumed")
        self.conflicts = metrics.Counter(
            "bgpo_detector_conflicts_written", "Conflict upserts written to PostgreSQL"
        )
        self.dead = metrics.Counter(
            "bgpo_dead_letters", "Records sent to the dead-letter topic", tag_keys=("reason",)
        )
        self.errors = metrics.Gauge(
            "bgpo_detector_errors", "Batches a detector failed on", tag_keys=("detector",)
        )
        self._last = WorkerStats()

    def __call__(self, stats: WorkerStats) -> None:
        for counter, now, before in (
            (self.updates, stats.updates, self._last.updates),
            (self.records, stats.records, self._last.records),
            (self.conflicts, stats.conflicts_written, self._last.conflicts_written),
        ):
            if now > before:  # Ray counters refuse increments of zero
                counter.inc(now - before)
        for reason, count in stats.dead_letters.items():
            delta = count - self._last.dead_letters.get(reason, 0)
            if delta:
                self.dead.inc(delta, tags={"reason": reason})
        for name, count in stats.detector_errors.items():
            self.errors.set(count, tags={"detector": name})
        self._last = WorkerStats(
            stats.records,
            stats.updates,
            stats.batches,
            stats.conflicts_written,
            stats.dead_letters.copy(),
        )


@serve.deployment(name="Detector")
class Detector:
    def __init__(self) -> None:
        import redis.asyncio as aioredis

        settings = Settings()
        if settings.kafka_bootstrap_servers is None or settings.redis_url is None:
            raise RuntimeError("BGPO_KAFKA_BOOTSTRAP_SERVERS and BGPO_REDIS_URL must be set")
        self._db = database_for(settings)
        self._redis = aioredis.from_url(settings.redis_url.get_secret_value())
        name = f"detector-{serve.get_replica_context().replica_tag}"
        self.worker = DetectionWorker(
            settings,
            self._db,
            RedisCheckpoints(self._redis, settings.detector_group, settings.kafka_topic),
            settings.kafka_bootstrap_servers,
            name=name,
            on_batch=_Exporter(),
        )
        self._task = asyncio.get_event_loop().create_task(self.worker.run())

    async def check_health(self) -> None:
        if self._task.done():
            error = self._task.exception()
            raise RuntimeError(f"the detection loop stopped: {error!r}")

    async def stats(self) -> dict[str, Any]:
        return self.worker.stats.as_dict()

    async def __del__(self) -> None:
        self.worker.stop()
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except Exception:
            log.warning("detection loop did not stop cleanly", exc_info=True)
        await self._db.close()
        await self._redis.aclose()


app = Detector.bind()  # type: ignore[attr-defined]
