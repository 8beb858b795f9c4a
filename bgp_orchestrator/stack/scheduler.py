"""The job scheduler: the stack's periodic Ray jobs as one background service.

Feature materialization (every ``BGPO_MATERIALIZE_INTERVAL_S``) and anomaly
fitting (every ``BGPO_ANOMALY_FIT_INTERVAL_S``, 0 = never) are submitted
through the Ray dashboard's job API; each schedule holds a Redis lock per run,
so any number of scheduler replicas submit each run once. Hosted by
``deployments/scheduler.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack.jobs_client import (
    JobLauncher,
    JobSchedule,
    anomaly_fit_schedule,
    materialize_schedule,
)

#: Failed submissions in a row after which the scheduler reports itself unhealthy.
MAX_FAILURES = 5


class JobScheduler:
    name = "job-scheduler"

    def __init__(
        self,
        schedules: Sequence[JobSchedule],
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.schedules = list(schedules)
        self._closers = list(closers)

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any) -> JobScheduler:
        launcher = JobLauncher(settings)
        schedules = [materialize_schedule(redis, launcher, settings.materialize_interval_s)]
        if settings.anomaly_fit_interval_s:
            schedules.append(anomaly_fit_schedule(redis, launcher, settings.anomaly_fit_interval_s))
        return cls(schedules, closers=[redis.aclose])

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(schedule.run(stop) for schedule in self.schedules))

    def health(self) -> list[str]:
        return [
            f"{s.name}: {s.failures} submissions failed in a row ({s.last_error})"
            for s in self.schedules
            if s.failures >= MAX_FAILURES
        ]

    def stats(self) -> dict[str, Any]:
        return {
            s.name: {"last_job": s.last_job, "failures": s.failures, "last_error": s.last_error}
            for s in self.schedules
        }

    async def aclose(self) -> None:
        for close in self._closers:
            await close()
