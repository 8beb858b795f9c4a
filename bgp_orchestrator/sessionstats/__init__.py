"""Live per-session window stats from ``bgp.updates``: flap features and metric points.

Ray-free; ``deployments/session_stats.py`` runs :class:`SessionStatsWorker` on Serve.
"""

from bgp_orchestrator.sessionstats.stream import ClosedWindow, WindowStream
from bgp_orchestrator.sessionstats.worker import (
    PointSink,
    SessionStatsCounters,
    SessionStatsWorker,
)

__all__ = [
    "ClosedWindow",
    "PointSink",
    "SessionStatsCounters",
    "SessionStatsWorker",
    "WindowStream",
]
