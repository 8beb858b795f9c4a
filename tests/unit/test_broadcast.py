"""The live stream's frontier: which outbox ids may be handed out without leaving a gap."""

from __future__ import annotations

from bgp_orchestrator.api.broadcast import ConflictBroadcaster, _Mark, parse_snapshot


def test_parse_snapshot() -> None:
    assert parse_snapshot("10:15:11,13") == {11, 13}
    assert parse_snapshot("10:10:") == frozenset()


def test_ids_wait_for_the_transactions_that_may_still_commit_below_them() -> None:
    stream = ConflictBroadcaster("postgresql://nowhere/x", max_hold_s=10.0)

    def frontier(last: int, in_progress: set[int], at: float) -> int | None:
        return stream._frontier(_Mark(last, frozenset(in_progress), at))

    assert frontier(5, {100}, 0.0) is None  # transaction 100 may hold an id up to 5
    assert frontier(5, set(), 0.1) == 5  # nothing in progress: all up to 5 is visible
    assert frontier(8, {101}, 0.2) == 5  # 101 may have taken 6, 7 or 8
    assert frontier(9, {101, 102}, 0.3) == 5
    assert frontier(9, {102}, 0.4) == 8  # 101 ended: up to 8 is settled; 102 holds 9 back
    assert frontier(9, {103}, 0.5) == 9
    assert stream.counters.forced_frontiers == 0


def test_a_transaction_open_too_long_stops_holding_the_stream() -> None:
    stream = ConflictBroadcaster("postgresql://nowhere/x", max_hold_s=10.0)
    marks = [(3, {7}, 0.0), (4, {7, 8}, 5.0), (6, {7}, 9.0), (6, {7}, 10.5)]
    results = [stream._frontier(_Mark(last, frozenset(xids), at)) for last, xids, at in marks]
    assert results == [None, None, None, 3]  # 7 open for more than 10 s: up to 3 goes
    assert stream.counters.forced_frontiers == 1
    assert stream._frontier(_Mark(6, frozenset(), 10.6)) == 6  # 7 ended
