"""Window rows -> metric points."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bgp_orchestrator.anomaly import points
from bgp_orchestrator.anomaly.series import METRICS, MetricPoint
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.windows import window_counts

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
W = 300


def test_every_metric_of_the_series_contract_is_written() -> None:
    assert set(points.WRITTEN) == set(METRICS)


def test_window_rows_become_four_points_per_session_at_the_window_end() -> None:
    t = T0.timestamp()
    updates = [
        Update(Kind.ANNOUNCE, t + 1, "192.0.2.1", 64500, "10.0.0.0/24", (64500, 1), collector="c"),
        Update(Kind.ANNOUNCE, t + 2, "192.0.2.1", 64500, "10.0.1.0/24", (64500, 2), collector="c"),
        Update(Kind.ANNOUNCE, t + 3, "192.0.2.1", 64500, "10.0.2.0/24", (64500, 2), collector="c"),
        Update(Kind.WITHDRAW, t + 4, "192.0.2.1", 64500, "10.0.2.0/24", collector="c"),
        Update(Kind.ANNOUNCE, t + 5, "192.0.2.7", 64501, "10.9.0.0/24", (64501, 9), collector="c"),
        Update(Kind.WITHDRAW, t + W + 1, "192.0.2.7", 64501, "10.9.0.0/24", collector="c"),
    ]
    rows = window_counts(updates, W)
    got = points.window_points(rows, W)
    end0, end1 = t + W, t + 2 * W
    by_key = {(p.metric, p.session, p.timestamp): p for p in got}
    assert len(got) == 4 * len(rows) == 16
    s1, s7 = "c|192.0.2.1", "c|192.0.2.7"
    assert by_key[(points.UPDATE_RATE, s1, end0)].value == pytest.approx(4 / 5)
    assert by_key[(points.WITHDRAWAL_RATE, s1, end0)].value == pytest.approx(1 / 5)
    assert by_key[(points.PREFIXES, s1, end0)].value == 2
    assert by_key[(points.ORIGIN_COUNT, s1, end0)].value == 2
    assert by_key[(points.ORIGIN_COUNT, s7, end0)] == MetricPoint(
        points.ORIGIN_COUNT, s7, 64501, end0, 1.0
    )
    # the quiet window of session 1 and the withdrawal of session 7
    assert by_key[(points.UPDATE_RATE, s1, end1)].value == 0
    assert by_key[(points.PREFIXES, s1, end1)].value == 2
    assert by_key[(points.ORIGIN_COUNT, s1, end1)].value == 0
    assert by_key[(points.WITHDRAWAL_RATE, s7, end1)].value == pytest.approx(1 / 5)
    assert by_key[(points.PREFIXES, s7, end1)].value == 0
    assert all(p.peer_asn == (64500 if p.session == s1 else 64501) for p in got)


def test_naive_window_starts_are_refused() -> None:
    row = {
        "session_id": "c|p",
        "peer_asn": 1,
        "window_start": datetime(2026, 1, 1),
        "announcements": 0,
        "withdrawals": 0,
        "prefix_count": 0,
        "distinct_origins": 0,
    }
    with pytest.raises(ValueError, match="timezone"):
        points.window_points([row], W)
    with pytest.raises(ValueError, match="positive"):
        points.window_points([], 0)
