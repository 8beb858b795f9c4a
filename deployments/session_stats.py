"""Live per-session window stats on Ray Serve: flap features and metric series from the stream.

The replica hosts :class:`bgp_orchestrator.sessionstats.SessionStatsWorker`
(``deployments/hosting.py``): every closed window's metric points go to the
metric store through a background writer, its flap features to the offline
store (the scheduled materialization moves them to Redis). Any number of
replicas (``num_replicas`` in the serve config, 2 by default): both stages of the
worker share their topics' partitions through Kafka's consumer groups, and a
partition that moves (a rebalance, a replica killed) is resumed from its fenced
checkpoint in Redis, its route tables and hour of feature history with it.
Serve replaces a replica whose worker died or stalled.
"""

from __future__ import annotations

from ray import serve

from bgp_orchestrator.local.priority import lower_priority
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.workers import session_stats_worker
from deployments.hosting import DEAD_LETTERS, ServiceHost, ServiceMetrics


@serve.deployment(name="SessionStats")
class SessionStats(ServiceHost):
    # Stopping waits for the consume loop to drain and the metric writer to flush.
    stop_timeout_s = 15.0

    def __init__(self) -> None:
        settings = Settings()
        if settings.session_stats_nice:
            # Windows may lag a burst; conflict detection on the same cores may not (the
            # worker also paces itself while the CPU is contended: stream/pacing.py).
            lower_priority(settings.session_stats_nice)
        name = f"session-stats-{serve.get_replica_context().replica_tag}"
        self.host(
            session_stats_worker(settings, name),
            ServiceMetrics(
                "session-stats",
                counters={
                    "updates": ("bgpo_session_stats_updates", "Updates counted into windows"),
                    "windows_closed": ("bgpo_session_stats_windows", "Windows handed over"),
                },
                labelled=DEAD_LETTERS,
            ),
        )


app = SessionStats.bind()  # type: ignore[attr-defined]
