"""Conflict detection on Ray Serve: each replica is one member of the Kafka consumer group.

The replica hosts :class:`bgp_orchestrator.detection.worker.DetectionWorker`
(``deployments/hosting.py``). Serve replaces a replica whose worker died or
reports a stalled partition (``check_health``); the consumer group hands its
partitions to the others meanwhile, and the checkpoints let whoever takes
them over resume without losing state.
"""

from __future__ import annotations

from ray import serve

from bgp_orchestrator.settings import Settings
from bgp_orchestrator.workers import detection_worker
from deployments.hosting import DEAD_LETTERS, ServiceHost, ServiceMetrics


@serve.deployment(name="Detector")
class Detector(ServiceHost):
    stop_timeout_s = 15.0

    def __init__(self) -> None:
        name = f"detector-{serve.get_replica_context().replica_tag}"
        self.host(
            detection_worker(Settings(), name),
            ServiceMetrics(
                "detector",
                counters={
                    "updates": ("bgpo_detector_updates", "Updates run through the detectors"),
                    "records": ("bgpo_detector_records", "Kafka records consumed"),
                    "conflicts_written": (
                        "bgpo_detector_conflicts_written",
                        "Conflict rows upserted into PostgreSQL",
                    ),
                    "log_resets": (
                        "bgpo_detector_log_resets",
                        "Partitions found on a new log (the broker lost its old one)",
                    ),
                },
                labelled={
                    **DEAD_LETTERS,
                    "detector_errors": (
                        "bgpo_detector_errors",
                        "Batches a detector failed on",
                        "detector",
                    ),
                },
            ),
        )


app = Detector.bind()  # type: ignore[attr-defined]
