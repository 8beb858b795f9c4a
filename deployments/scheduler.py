"""The stack's periodic jobs on Ray Serve: one replica hosting the job scheduler.

Feature materialization and anomaly fitting are submitted through the Ray
dashboard's job API (``bgp_orchestrator.stack.scheduler``); a Redis lock per
run makes any number of replicas submit each run once.
"""

from __future__ import annotations

from ray import serve

from bgp_orchestrator.settings import Settings
from bgp_orchestrator.workers import job_scheduler
from deployments.hosting import ServiceHost


@serve.deployment(name="JobScheduler")
class Scheduler(ServiceHost):
    def __init__(self) -> None:
        self.host(job_scheduler(Settings()))


app = Scheduler.bind()  # type: ignore[attr-defined]
