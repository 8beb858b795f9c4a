"""Window rows -> the per-session metric points of :data:`~.series.METRICS`.

One closed window of :class:`~bgp_orchestrator.flaps.windows.WindowAggregator`
rows becomes four points per session, stamped with the window's end:

* ``bgpo_session_update_rate``: (announcements + withdrawals) per minute;
* ``bgpo_session_withdrawal_rate``: withdrawals per minute;
* ``bgpo_session_prefixes``: ``prefix_count`` (prefixes held at the window's end);
* ``bgpo_session_origins``: ``distinct_origins`` (origin ASNs announced in the window).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.flaps.features import ENTITY
from bgp_orchestrator.flaps.windows import ORIGINS

UPDATE_RATE = "bgpo_session_update_rate"
WITHDRAWAL_RATE = "bgpo_session_withdrawal_rate"
PREFIXES = "bgpo_session_prefixes"
ORIGIN_COUNT = "bgpo_session_origins"

#: The metrics :func:`window_points` writes (all of :data:`~.series.METRICS`; a test checks).
WRITTEN = (UPDATE_RATE, WITHDRAWAL_RATE, PREFIXES, ORIGIN_COUNT)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"window_start must be timezone-aware, got {value!r}")
        return value.timestamp()
    return float(value)


def window_points(rows: Iterable[Mapping[str, Any]], window_s: int) -> list[MetricPoint]:
    """The metric points of window rows (``session_id``, ``peer_asn``, ``window_start``,
    the base counts and ``distinct_origins``)."""
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    minutes = window_s / 60.0
    points: list[MetricPoint] = []
    start: Any = None
    end = 0.0
    for row in rows:
        session = str(row[ENTITY])
        asn = int(row["peer_asn"])
        if row["window_start"] is not start:  # the rows of one window share theirs
            start = row["window_start"]
            end = _epoch(start) + window_s
        withdrawals = float(row["withdrawals"])
        updates = float(row["announcements"]) + withdrawals
        points.extend(
            (
                MetricPoint(UPDATE_RATE, session, asn, end, updates / minutes),
                MetricPoint(WITHDRAWAL_RATE, session, asn, end, withdrawals / minutes),
                MetricPoint(PREFIXES, session, asn, end, float(row["prefix_count"])),
                MetricPoint(ORIGIN_COUNT, session, asn, end, float(row[ORIGINS])),
            )
        )
    return points
