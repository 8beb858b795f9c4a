"""Partial windows per partition, merged per session, equal the single-stream windows; the
stages' state survives a checkpoint round trip mid-stream."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pandas as pd
import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.features import ENTITY, TIMESTAMP, derive_features
from bgp_orchestrator.flaps.live import LiveFeatures
from bgp_orchestrator.flaps.windows import window_counts
from bgp_orchestrator.sessionstats import partials as wire
from bgp_orchestrator.sessionstats.merge import SessionMerger
from bgp_orchestrator.sessionstats.snapshot import dump_merge, dump_stream, load_merge, load_stream
from bgp_orchestrator.sessionstats.stream import WindowStream

T0 = int(datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp())
W = 300
SOURCES = 4
TARGETS = 3


def updates(seed: int, windows: int, sessions: int = 7) -> list[Update]:
    """Announcements (origins varying, AS_SETs), withdrawals, path changes, flaps."""
    rng = random.Random(seed)
    out: list[Update] = []
    for w in range(windows):
        for _ in range(rng.randint(10, 60)):
            peer = rng.randrange(sessions)
            kind = rng.choices(
                [Kind.ANNOUNCE, Kind.WITHDRAW, Kind.PEER_DOWN, Kind.PEER_UP],
                weights=[70, 25, 2, 2],
            )[0]
            prefix = f"10.{rng.randrange(16)}.{rng.randrange(8)}.0/24" if kind <= 2 else ""
            path: tuple[Any, ...] = ()
            if kind == Kind.ANNOUNCE:
                last: Any = rng.choice([65000, 65001, 65002, (65003, 65004)])
                path = (64500 + peer, *rng.sample(range(1, 50), rng.randint(0, 2)), last)
            t = T0 + w * W + rng.uniform(0, W - 1)
            out.append(
                Update(kind, t, f"192.0.2.{peer}", 64500 + peer, prefix, path, collector="c")
            )
    return sorted(out, key=lambda u: u.timestamp)


def run_partials(stream: list[Update], *, snapshot_at: int | None = None) -> dict[int, list[bytes]]:
    """Each partition's windows (closed on its own event time, then a long quiet), as
    records per target partition. ``snapshot_at``: dump and load every partition's
    stream after that many records."""
    groups = codec.split_by_partition(stream, SOURCES)
    out: dict[int, list[bytes]] = {t: [] for t in range(TARGETS)}
    for p in range(SOURCES):
        ws = WindowStream(W, 10, partial=True)
        for offset, update in enumerate(groups.get(p, [])):
            if snapshot_at is not None and offset == snapshot_at:
                ws = load_stream(dump_stream(ws), now=0.0)
            ws.offer(p, offset, [update], now=0.0)
            closed = ws.advance([p], now=0.0)
            send(out, p, closed)
        send(out, p, ws.advance([], now=10 * W))  # caught up and quiet: the clock closes
    return out


def send(out: dict[int, list[bytes]], source: int, closed: list[Any]) -> None:
    for window in closed:
        for t, rows in enumerate(wire.split_rows(window.rows, TARGETS)):
            out[t].append(wire.encode_window(source, SOURCES, window.start, W, rows))


def merge(records: dict[int, list[bytes]], *, snapshot_at: int | None = None) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    features = []
    for values in records.values():
        merger, live = SessionMerger(W), LiveFeatures(W)
        for offset, value in enumerate(values):
            if snapshot_at is not None and offset == snapshot_at:
                merger, live = load_merge(dump_merge(merger, live))
            merger.offer(offset, wire.decode(value))
            for window in merger.ready():
                rows.extend(window.rows)
                features.append(live.update(window.rows))
    frame = pd.DataFrame(rows)
    frame.attrs["features"] = pd.concat([f for f in features if len(f)], ignore_index=True)
    return frame


def expected_rows(stream: list[Update]) -> pd.DataFrame:
    return pd.DataFrame(window_counts(stream, W))


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by).reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merged_partials_equal_the_single_stream(seed: int) -> None:
    stream = updates(seed, windows=16)
    got = merge(run_partials(stream))
    want = expected_rows(stream)
    # the last window is closed by the quiet clock in both; compare the windows both have
    got = got[got["window_start"] <= want["window_start"].max()]
    columns = list(want.columns)
    pd.testing.assert_frame_equal(
        _sorted(got[columns], [ENTITY, "window_start"]),
        _sorted(want, [ENTITY, "window_start"]),
        check_dtype=False,
    )
    features = got.attrs["features"]
    offline = derive_features(want, W)
    offline[TIMESTAMP] = pd.to_datetime(offline[TIMESTAMP], utc=True)
    features[TIMESTAMP] = pd.to_datetime(features[TIMESTAMP], utc=True)
    features = features[features[TIMESTAMP] <= offline[TIMESTAMP].max()]
    pd.testing.assert_frame_equal(
        _sorted(features, [ENTITY, TIMESTAMP]), _sorted(offline, [ENTITY, TIMESTAMP])
    )


def test_state_restored_from_checkpoints_gives_the_same_features() -> None:
    stream = updates(7, windows=20)
    plain = merge(run_partials(stream))
    restored = merge(run_partials(stream, snapshot_at=150), snapshot_at=9)
    pd.testing.assert_frame_equal(
        _sorted(restored.attrs["features"], [ENTITY, TIMESTAMP]),
        _sorted(plain.attrs["features"], [ENTITY, TIMESTAMP]),
    )
    # the routes held survived: prefix counts never fall back to zero after the restore
    assert (restored["prefix_count"] > 0).sum() == (plain["prefix_count"] > 0).sum()


def test_a_window_waits_for_every_source() -> None:
    merger = SessionMerger(W)
    row = ["c|a", 64500, 1, 0, 1, 2, 1, 0, 0, 0, 1, [65000], []]
    merger.offer(0, wire.decode(wire.encode_window(0, 2, T0, W, [row])))
    assert merger.ready() == []  # source 1 not heard from
    assert merger.committable() == 0
    merger.offer(1, wire.decode(wire.encode_window(1, 2, T0, W, [row])))
    (window,) = merger.ready()
    assert window.start == T0
    assert window.rows[0]["announcements"] == 2 and window.rows[0]["prefix_count"] == 2
    assert window.rows[0]["distinct_origins"] == 1  # the same origin on both partitions
    assert merger.committable() == 2
    # a replayed partial of a merged window is dropped, not counted twice
    merger.offer(2, wire.decode(wire.encode_window(1, 2, T0, W, [row])))
    assert merger.ready() == [] and merger.duplicates == 1
    assert merger.committable() == 3


def test_session_events_counted_once_and_a_heartbeat_releases_a_window() -> None:
    merger = SessionMerger(W)
    down = ["c|a", 64500, 0, 0, 0, 0, 0, 0, 1, 0, 0, [], []]
    merger.offer(0, wire.decode(wire.encode_window(0, 3, T0, W, [down])))
    merger.offer(1, wire.decode(wire.encode_window(1, 3, T0, W, [down])))
    assert merger.ready() == []
    # source 2 never carried an update: its heartbeat says it has nothing before T0 + W
    merger.offer(2, wire.decode(wire.encode_heartbeat(2, 3, T0 + W)))
    (window,) = merger.ready()
    assert window.rows[0]["downs"] == 1  # copied to every partition, counted once


def test_a_quiet_session_keeps_the_routes_its_sources_last_reported() -> None:
    """Partials are sparse: a source that saw nothing of a session in a window sends no
    row for it; the merged row still counts the routes that source holds, and a session
    quiet everywhere still gets its row of zeros. Kept across a checkpoint."""
    merger = SessionMerger(W)
    a0 = ["c|a", 64500, 3, 0, 3, 9, 3, 0, 0, 0, 3, [65000], [[65001, 65002]]]
    a1 = ["c|a", 64500, 2, 0, 2, 6, 2, 0, 0, 0, 2, [65000], []]
    b0 = ["c|b", 64501, 1, 0, 1, 2, 1, 0, 0, 0, 1, [65009], []]
    merger.offer(0, wire.decode(wire.encode_window(0, 2, T0, W, [a0, b0])))
    merger.offer(1, wire.decode(wire.encode_window(1, 2, T0, W, [a1])))
    (first,) = merger.ready()
    assert [(r["session_id"], r["prefix_count"], r["distinct_origins"]) for r in first.rows] == [
        ("c|a", 5, 2),
        ("c|b", 1, 1),
    ]
    merger = SessionMerger.load(W, merger.dump())
    withdrawn = ["c|a", 64500, 0, 1, 1, 0, 0, 0, 0, 0, 1, [], []]  # source 1: one route left
    merger.offer(2, wire.decode(wire.encode_window(0, 2, T0 + W, W, [])))
    merger.offer(3, wire.decode(wire.encode_window(1, 2, T0 + W, W, [withdrawn])))
    (second,) = merger.ready()
    a, b = second.rows
    assert (a["withdrawals"], a["prefix_count"], a["announcements"]) == (1, 4, 0)
    assert (b["announcements"], b["prefix_count"], b["distinct_origins"]) == (0, 1, 0)


def test_records_of_the_first_format_still_merge() -> None:
    """Records a replica sent before the upgrade (one list of origins) are read."""
    old = msgpack.packb(
        [1, 0, 1, T0, T0 + W, [["c|a", 64500, 2, 0, 2, 4, 2, 0, 0, 0, 2, [65000, [1, 2]]]]]
    )
    merger = SessionMerger(W)
    merger.offer(0, wire.decode(old))
    (window,) = merger.ready()
    assert window.rows[0]["distinct_origins"] == 2 and window.rows[0]["prefix_count"] == 2


def test_sessions_map_to_stable_partitions() -> None:
    assert wire.session_partition("rrc00|192.0.2.1", 8) == wire.session_partition(
        "rrc00|192.0.2.1", 8
    )
    spread = {wire.session_partition(f"c|10.0.0.{i}", 8) for i in range(200)}
    assert spread == set(range(8))


def test_bad_partial_records_are_refused_with_a_reason() -> None:
    with pytest.raises(wire.BadPartial, match="not a partial"):
        wire.decode(b"\xc1")
    with pytest.raises(wire.BadPartial, match="source partition"):
        wire.decode(wire.encode_heartbeat(5, 3, T0))
