"""Periodic jobs: one replica of many submits each run (a Redis lock)."""

from typing import Any

from bgp_orchestrator.stack.jobs_client import (
    ANOMALY_FIT_ENTRYPOINT,
    MATERIALIZE_ENTRYPOINT,
    anomaly_fit_schedule,
    materialize_schedule,
)


class FakeRedis:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, int]] = {}

    async def set(self, key: str, value: str, nx: bool, ex: int) -> bool:
        assert nx and ex > 0
        if key in self.keys:
            return False
        self.keys[key] = (value, ex)
        return True


class FakeLauncher:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []

    async def submit(self, entrypoint: str, name: str) -> str:
        self.submitted.append((entrypoint, name))
        return f"job-{len(self.submitted)}"


async def test_one_of_two_replicas_submits_and_schedules_do_not_share_a_lock() -> None:
    redis, launcher = FakeRedis(), FakeLauncher()
    fake: Any = launcher
    first = anomaly_fit_schedule(redis, fake, 3600)
    second = anomaly_fit_schedule(redis, fake, 3600)
    assert await first.tick() == "job-1"
    assert await second.tick() is None  # the other replica holds this run's lock
    assert first.last_job == "job-1" and second.last_job is None
    assert await materialize_schedule(redis, fake, 300).tick() == "job-2"
    assert launcher.submitted == [
        (ANOMALY_FIT_ENTRYPOINT, "fit-anomalies"),
        (MATERIALIZE_ENTRYPOINT, "materialize"),
    ]
    # The lock expires before the next run is due.
    assert all(
        ttl < interval for (_, ttl), interval in zip(redis.keys.values(), (3600, 300), strict=True)
    )
    assert "--report-hours" in ANOMALY_FIT_ENTRYPOINT
