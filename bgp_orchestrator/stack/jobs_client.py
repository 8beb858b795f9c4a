"""Submit Ray jobs through the dashboard's REST API (what `ray job submit` uses),
and the periodic jobs built on it (feature materialization, anomaly fitting)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

import httpx

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.service import sleep_or_stop
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack import ray_auth

log = logging.getLogger(__name__)

MATERIALIZE_ENTRYPOINT = "python -m jobs.materialize_features"
MATERIALIZE_LOCK = "bgpo:flap:materialize-lock"
# Hourly refits over two weeks of history; anomalies ending in the last three hours
# are stored (older ones were stored by earlier runs).
ANOMALY_FIT_ENTRYPOINT = "python -m jobs.fit_anomalies --days 14 --report-hours 3"
ANOMALY_FIT_LOCK = "bgpo:anomaly:fit-lock"


def job_env() -> dict[str, str]:
    """The BGPO_* settings of this process, for the job's environment."""
    return {k: v for k, v in os.environ.items() if k.startswith("BGPO_")}


class JobLauncher:
    def __init__(self, settings: Settings, timeout_s: float = 15.0) -> None:
        self.base = settings.dashboard_url.rstrip("/")
        self.timeout_s = timeout_s

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                return await client.request(
                    method, self.base + path, headers=ray_auth.headers(), **kwargs
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "ray-dashboard-unreachable",
                f"the Ray dashboard at {self.base} does not answer ({exc})",
            ) from exc

    async def submit(self, entrypoint: str, name: str) -> str:
        """Submit a job; returns its submission id."""
        submission_id = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        response = await self._request(
            "POST",
            "/api/jobs/",
            json={
                "entrypoint": entrypoint,
                "submission_id": submission_id,
                "runtime_env": {"env_vars": job_env()},
                "metadata": {"submitted_by": "bgpo"},
            },
        )
        if response.status_code != 200:
            raise ServiceUnavailable(
                "job-submit-failed",
                f"Ray refused the job (HTTP {response.status_code}): {response.text[:500]}",
            )
        return str(response.json().get("submission_id", submission_id))

    async def status(self, submission_id: str) -> dict[str, Any]:
        response = await self._request("GET", f"/api/jobs/{submission_id}")
        if response.status_code != 200:
            raise ServiceUnavailable(
                "job-status-failed", f"no status for job {submission_id} ({response.status_code})"
            )
        answer: dict[str, Any] = response.json()
        return answer


class JobSchedule:
    """Submit ``entrypoint`` every ``interval_s``; a Redis lock makes one replica of
    many do it. The first run is one interval away (`bgpo up` has just done the
    work, or there is nothing to do yet)."""

    def __init__(
        self,
        redis: Any,
        launcher: JobLauncher,
        interval_s: float,
        *,
        entrypoint: str,
        name: str,
        lock: str,
    ) -> None:
        self._redis = redis
        self._launcher = launcher
        self._interval_s = interval_s
        self._entrypoint = entrypoint
        self._name = name
        self._lock = lock
        self.last_job: str | None = None
        self.failures = 0
        self.last_error = ""

    async def tick(self) -> str | None:
        owner = uuid.uuid4().hex
        ttl = max(1, int(self._interval_s * 0.9))
        if not await self._redis.set(self._lock, owner, nx=True, ex=ttl):
            return None
        self.last_job = await self._launcher.submit(self._entrypoint, self._name)
        return self.last_job

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every interval until ``stop``; a failed tick is counted and retried next time."""
        while not await sleep_or_stop(stop, self._interval_s):
            try:
                await self.tick()
                self.failures = 0
            except Exception as exc:  # the next tick tries again
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("scheduling %s failed: %s", self._name, exc)

    @property
    def name(self) -> str:
        return self._name


def materialize_schedule(redis: Any, launcher: JobLauncher, interval_s: float) -> JobSchedule:
    return JobSchedule(
        redis,
        launcher,
        interval_s,
        entrypoint=MATERIALIZE_ENTRYPOINT,
        name="materialize",
        lock=MATERIALIZE_LOCK,
    )


def anomaly_fit_schedule(redis: Any, launcher: JobLauncher, interval_s: float) -> JobSchedule:
    return JobSchedule(
        redis,
        launcher,
        interval_s,
        entrypoint=ANOMALY_FIT_ENTRYPOINT,
        name="fit-anomalies",
        lock=ANOMALY_FIT_LOCK,
    )
