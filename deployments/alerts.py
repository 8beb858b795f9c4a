"""Alert fan-out on Ray Serve: one replica hosting the webhook dispatcher."""

from __future__ import annotations

from ray import serve

from bgp_orchestrator.settings import Settings
from bgp_orchestrator.workers import alert_dispatcher
from deployments.hosting import ServiceHost, ServiceMetrics


@serve.deployment(name="AlertDispatcher")
class Alerts(ServiceHost):
    def __init__(self) -> None:
        self.host(
            alert_dispatcher(Settings()),
            ServiceMetrics(
                "alerts",
                counters={
                    "delivered": ("bgpo_alerts_delivered", "Webhook deliveries that succeeded"),
                    "failed_attempts": ("bgpo_alerts_failed_attempts", "Failed deliveries"),
                    "given_up": ("bgpo_alerts_given_up", "Deliveries given up"),
                },
            ),
        )


app = Alerts.bind()  # type: ignore[attr-defined]
