"""The per-session metric series: names, keys and points.

The stack records four series per BGP session (``collector|peer address``), one
point per feature window (``BGPO_FLAP_WINDOW_S``, 5 minutes by default). The
names are Prometheus/VictoriaMetrics metric names; every point carries the
labels ``session`` and ``peer_asn``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import NamedTuple

#: Metric name -> what it measures. The only series the stack writes per session.
METRICS: dict[str, str] = {
    "bgpo_session_update_rate": "announcements + withdrawals per minute in the window",
    "bgpo_session_withdrawal_rate": "withdrawals per minute in the window",
    "bgpo_session_prefixes": "prefixes the session holds at the window's end",
    "bgpo_session_origins": "distinct origin ASNs announced in the window",
}

#: The metric of the trailing multivariate detector's anomalies: a session's
#: metrics scored together (:mod:`bgp_orchestrator.anomaly.multivariate`); a
#: name in the anomalies table, not a series of the metric store.
TRAILING_METRIC = "bgpo_session_features"
#: Every metric an anomaly can be of.
ANOMALY_METRICS: tuple[str, ...] = (*METRICS, TRAILING_METRIC)

#: Series the fitting job writes back beside each fitted series, for plotting
#: (label ``metric`` names the fitted series' metric).
BAND_METRICS: dict[str, str] = {
    "bgpo_anomaly_expected": "the model's expected value",
    "bgpo_anomaly_lower": "lower edge of the band (expected - k * sigma)",
    "bgpo_anomaly_upper": "upper edge of the band (expected + k * sigma)",
}

#: Buckets of the Parquet fallback store and of the fitting job's chunks.
BUCKETS = 64


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    metric: str
    session: str

    @property
    def series_id(self) -> str:
        """One string for the series: ``metric/session``."""
        return f"{self.metric}/{self.session}"

    @classmethod
    def parse(cls, series_id: str) -> SeriesKey:
        metric, sep, session = series_id.partition("/")
        if not sep or not metric or not session:
            raise ValueError(f"not a series id (metric/session): {series_id!r}")
        return cls(metric, session)


class MetricPoint(NamedTuple):
    """One point of a series. A named tuple, not a frozen dataclass: session stats make
    four per session and window (320,000 a window at 80,000 sessions), and a frozen
    dataclass's ``__init__`` costs several times a tuple's."""

    metric: str
    session: str
    peer_asn: int
    timestamp: float  # epoch seconds (UTC)
    value: float
    #: Further labels, e.g. ``(("series_metric", "bgpo_session_prefixes"),)`` on band series.
    labels: tuple[tuple[str, str], ...] = ()


def bucket_of(session: str, buckets: int = BUCKETS) -> int:
    """A stable bucket for a session (the same in every process, unlike ``hash``)."""
    return zlib.crc32(session.encode()) % buckets
