"""Window closing over partitions: event time, quiet streams, session events, offsets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.sessionstats.stream import WindowStream
from bgp_orchestrator.sessionstats.worker import invalid_reason

T0 = int(datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp())
W = 300


def ann(t: float, peer: str = "192.0.2.1", prefix: str = "10.0.0.0/24") -> Update:
    return Update(Kind.ANNOUNCE, T0 + t, peer, 64500, prefix, (64500, 1), collector="c")


def event(kind: Kind, t: float, peer: str = "192.0.2.1") -> Update:
    return Update(kind, T0 + t, peer, 64500, collector="c")


def test_a_quiet_stream_is_closed_by_the_clock_with_zero_rows() -> None:
    stream = WindowStream(W, grace_s=10)
    stream.offer(0, 0, [ann(5), ann(6, peer="192.0.2.2")], now=1000.0)
    assert stream.advance([], now=1000.0) == []  # window 0 still open
    assert stream.advance([], now=1000.0 + W) == []  # its end, but not its grace yet
    closed = stream.advance([], now=1000.0 + 3 * W)  # quiet: windows 0, 1, 2 end
    assert [w.start for w in closed] == [T0, T0 + W]
    first, quiet = closed
    assert {r["session_id"]: r["announcements"] for r in first.rows} == {
        "c|192.0.2.1": 1,
        "c|192.0.2.2": 1,
    }
    assert [r["announcements"] for r in quiet.rows] == [0, 0]  # silent sessions get zeros
    assert [r["prefix_count"] for r in quiet.rows] == [1, 1]
    assert stream.committable() == {0: 1}


def test_event_time_closes_only_when_every_lagging_partition_passed_the_grace() -> None:
    stream = WindowStream(W, grace_s=10)
    stream.offer(0, 0, [ann(1)], now=0)
    stream.offer(1, 0, [ann(2)], now=0)
    stream.offer(0, 1, [ann(W + 20)], now=0)  # partition 0 is in the next window
    assert stream.advance([0, 1], now=0) == []  # partition 1 may still hold window 0
    assert stream.ahead(0) and not stream.ahead(1)
    stream.offer(1, 1, [ann(W - 1), ann(W + 5)], now=0)  # before the grace: still window 0
    assert stream.advance([0, 1], now=0) == []
    assert stream.committable() == {0: 0, 1: 0}  # nothing closed: nothing to commit
    stream.offer(1, 2, [ann(W + 11)], now=0)
    (closed,) = stream.advance([0, 1], now=0)
    assert closed.start == T0 and closed.rows[0]["announcements"] == 3
    assert stream.aggregator.late == 0
    # the buffered updates of window 1 were counted there
    assert stream.pending == 0 and not stream.ahead(0)
    assert stream.committable() == {0: 1, 1: 1}


def test_a_partition_without_data_yet_holds_the_watermark() -> None:
    stream = WindowStream(W, grace_s=0)
    stream.offer(0, 0, [ann(1), ann(3 * W)], now=0)
    assert stream.watermark([0, 1], now=0) is None
    assert stream.advance([0, 1], now=0) == []
    assert len(stream.advance([0], now=0)) == 3  # partition 1 caught up (empty)


def test_late_updates_count_in_the_open_window_and_hold_their_record() -> None:
    stream = WindowStream(W, grace_s=0)
    stream.offer(0, 0, [ann(1)], now=0)
    stream.offer(0, 1, [ann(W + 1)], now=0)
    assert [w.start for w in stream.advance([0], now=0)] == [T0]
    stream.offer(1, 0, [ann(2, peer="192.0.2.9")], now=0)  # window 0 is closed already
    assert stream.aggregator.late == 1
    assert stream.committable() == {0: 1, 1: 0}  # it is counted in the open window 1
    (closed,) = stream.advance([], now=W)
    assert {r["session_id"]: r["announcements"] for r in closed.rows} == {
        "c|192.0.2.1": 1,
        "c|192.0.2.9": 1,
    }
    assert stream.committable() == {0: 2, 1: 1}


def test_session_events_copied_to_every_partition_count_once() -> None:
    stream = WindowStream(W, grace_s=0)
    for partition in range(4):
        stream.offer(partition, 0, [event(Kind.PEER_DOWN, 10), event(Kind.PEER_UP, 20)], now=0)
    stream.offer(0, 1, [event(Kind.PEER_DOWN, 30)], now=0)  # a second, real flap
    (closed,) = stream.advance([], now=W)
    (row,) = closed.rows
    assert (row["downs"], row["ups"]) == (2, 1)
    assert stream.duplicates == 6


def test_windows_handed_over_before_a_restart_are_skipped() -> None:
    stream = WindowStream(W, grace_s=0, skip_until=T0 + W)
    stream.offer(0, 7, [ann(1), ann(W + 1), ann(2 * W + 1)], now=0)
    assert stream.skipped == 2
    closed = stream.advance([], now=10 * W)
    assert closed[0].start == T0 + 2 * W


def test_records_without_updates_are_committable() -> None:
    stream = WindowStream(W, grace_s=0)
    stream.offer(0, 0, [], now=0)
    stream.offer(0, 1, [], now=0)
    assert stream.committable() == {0: 2}
    stream.forget(0)
    assert stream.committable() == {}


def broken(**fields: Any) -> Update:
    """An update as a foreign producer may encode it (the codec checks only the arity)."""
    return ann(1)._replace(**fields)


def test_invalid_updates_are_named() -> None:
    good = ann(1)
    assert invalid_reason(good) is None
    assert invalid_reason(event(Kind.PEER_UP, 1)) is None
    assert invalid_reason(broken(as_path=(1, (2, 3)))) is None
    for bad, needle in [
        (broken(timestamp="x"), "timestamp"),
        (broken(timestamp=float("nan")), "timestamp"),
        (broken(timestamp=-1.0), "timestamp"),
        (broken(kind=9), "kind"),
        (broken(peer_address=None), "strings"),
        (broken(peer_asn="64500"), "ASN"),
        (broken(prefix=7), "prefix"),
        (broken(as_path=({"a": 1},)), "AS path"),
        (broken(as_path=[1, 2]), "AS path"),
    ]:
        reason = invalid_reason(bad)
        assert reason is not None and needle in reason, (bad, reason)
    # a timestamp far ahead of the clock (one would close every window up to it)
    assert invalid_reason(good, latest=good.timestamp) is None
    for late in (good.timestamp + 1, float(int(good.timestamp) + 1)):
        reason = invalid_reason(broken(timestamp=late), latest=good.timestamp)
        assert reason is not None and "ahead of this machine's clock" in reason
