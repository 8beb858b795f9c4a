"""A session-stats worker in a process of its own, for tests that kill it (SIGKILL).

``python -m tests.integration.session_stats_child BOOTSTRAP REDIS_URL NAME``; the
settings come from the ``BGPO_*`` environment. Checkpoints go to Redis as in the
deployment; metric points are counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
from bgp_orchestrator.sessionstats import SessionStatsWorker
from bgp_orchestrator.settings import Settings


class Dropped:
    async def submit(self, points: Sequence[MetricPoint]) -> None:
        return None


async def main(bootstrap: str, redis_url: str, name: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    worker = SessionStatsWorker(
        Settings(),
        Dropped(),
        bootstrap,
        name=name,
        grace_s=5,
        checkpoints=lambda group, topic: RedisCheckpoints(client, group, topic),
    )
    await worker.run(asyncio.Event())  # until killed


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(*sys.argv[1:4]))
