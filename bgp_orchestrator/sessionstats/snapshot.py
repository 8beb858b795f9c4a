"""The session stats' state as bytes, for the fenced checkpoints the detector uses.

Two kinds of state, each saved per partition with the offset it reflects
(:class:`~bgp_orchestrator.detection.checkpoint.RedisCheckpoints`):

* a partition of ``bgp.updates`` (:func:`dump_stream` / :func:`load_stream`):
  its :class:`~.stream.WindowStream` — the routes every session holds there
  (prefix -> AS-path hash), the open window's counts, the updates buffered for
  later windows and the offsets not yet committable;
* a partition of the session-windows topic (:func:`dump_merge` /
  :func:`load_merge`): its :class:`~.merge.SessionMerger` (partials waiting for
  other sources) and the hour of window rows :class:`~bgp_orchestrator.flaps.live.LiveFeatures`
  looks back on — what keeps the 1-hour features going across a restart.

Clock readings are not saved (a monotonic clock means nothing in another
process), but how long a stream had been quiet when it was saved is: a
restored stream's event clock goes on from there on the restoring process's
clock, so a stream that stopped still gets its last windows closed however
often its partitions move meanwhile.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pandas as pd

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import AsPathElement
from bgp_orchestrator.flaps.features import BASE_COLUMNS, ENTITY
from bgp_orchestrator.flaps.live import LiveFeatures, _frame
from bgp_orchestrator.flaps.windows import WindowAggregator, _Session
from bgp_orchestrator.sessionstats.merge import SessionMerger
from bgp_orchestrator.sessionstats.stream import WindowStream

STREAM_FORMAT = 1
MERGE_FORMAT = 1


def _origin(value: Any) -> AsPathElement:
    return tuple(value) if isinstance(value, list) else int(value)


def _pack(data: Any) -> bytes:
    out: bytes = msgpack.packb(data, use_bin_type=True)
    return out


def _unpack(data: bytes, expected: int) -> list[Any]:
    version, *rest = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if version != expected:
        raise ValueError(f"session stats checkpoint format {version}, expected {expected}")
    return list(rest)


# --- a partition of the updates topic ---------------------------------------------------


def _dump_sessions(aggregator: WindowAggregator) -> list[Any]:
    return [
        [
            key,
            s.peer_asn,
            list(s.routes.items()),
            [s.announcements, s.withdrawals, s.path_len_sum, s.path_len_count],
            [s.path_changes, s.downs, s.ups],
            sorted(s.prefixes),
            [*s.origins, *(list(o) for o in s.origin_sets)],
        ]
        for key, s in aggregator._sessions.items()
    ]


def _load_sessions(aggregator: WindowAggregator, data: list[Any]) -> None:
    for key, asn, routes, counts, changes, prefixes, origins in data:
        session = _Session(int(asn), dict(routes))
        session.announcements, session.withdrawals, session.path_len_sum, session.path_len_count = (
            counts
        )
        session.path_changes, session.downs, session.ups = changes
        session.prefixes = set(prefixes)
        for o in origins:
            session.add_origin(_origin(o))
        aggregator.restore(key, session)


def dump_stream(stream: WindowStream, now: float | None = None) -> bytes:
    """One partition's window stream (it must hold one partition only); ``now``: the
    clock the stream was offered updates with (how long it has been quiet is saved)."""
    agg = stream.aggregator
    quiet = (
        max(0.0, now - stream._newest_at) if now is not None and stream._newest is not None else 0.0
    )
    return _pack(
        [
            STREAM_FORMAT,
            [stream.window_s, stream.grace_s, stream.skip_until, stream.open],
            [agg._open, agg.late, stream.duplicates, stream.skipped],
            _dump_sessions(agg),
            codec.encode_batch(stream._pending),
            list(stream.latest.items()),
            stream._newest,
            [[p, [list(r) for r in records]] for p, records in stream._records.items()],
            list(stream._next.items()),
            [[k[0], k[1], k[2], w] for k, w in stream._events.items()],
            quiet,
        ]
    )


def load_stream(data: bytes, now: float) -> WindowStream:
    """The stream :func:`dump_stream` saved; ``now``: the restoring process's clock."""
    (
        (window_s, grace_s, skip_until, open_),
        (agg_open, late, duplicates, skipped),
        sessions,
        pending,
        latest,
        newest,
        records,
        next_,
        events,
        *rest,
    ) = _unpack(data, STREAM_FORMAT)
    quiet = float(rest[0]) if rest else 0.0  # checkpoints saved before it was kept: 0
    stream = WindowStream(int(window_s), float(grace_s), skip_until=skip_until)
    stream.aggregator = WindowAggregator(int(window_s), partial=True)
    stream.open = open_
    stream.aggregator._open = agg_open
    stream.aggregator.late = int(late)
    stream.duplicates = int(duplicates)
    stream.skipped = int(skipped)
    _load_sessions(stream.aggregator, sessions)
    stream._pending = codec.decode_batch(pending)
    stream.latest = {int(p): float(t) for p, t in latest}
    stream._newest = newest
    stream._newest_at = now - quiet
    stream._records = {int(p): deque((int(o), int(w)) for o, w in rs) for p, rs in records}
    stream._next = {int(p): int(o) for p, o in next_}
    stream._events = {(int(k), float(t), str(peer)): int(w) for k, t, peer, w in events}
    return stream


# --- a partition of the session-windows topic -----------------------------------------------


def _dump_frame(frame: pd.DataFrame) -> list[Any]:
    starts = (frame["window_start"].astype("int64") // 1_000_000_000).tolist()
    columns = [frame[c].astype("int64").tolist() for c in BASE_COLUMNS]
    return [frame[ENTITY].astype(str).tolist(), starts, columns]


def _load_frame(data: list[Any]) -> pd.DataFrame:
    sessions, starts, columns = data
    rows = [
        {
            ENTITY: session,
            "window_start": pd.Timestamp(start, unit="s", tz="UTC"),
            **{c: values[i] for c, values in zip(BASE_COLUMNS, columns, strict=True)},
        }
        for i, (session, start) in enumerate(zip(sessions, starts, strict=True))
    ]
    return _frame(rows)


def dump_merge(merger: SessionMerger, features: LiveFeatures) -> bytes:
    return _pack(
        [
            MERGE_FORMAT,
            merger.window_s,
            merger.dump(),
            _dump_frame(features._history),
            _dump_frame(features._flaps),
        ]
    )


def load_merge(data: bytes) -> tuple[SessionMerger, LiveFeatures]:
    window_s, merger, history, flaps = _unpack(data, MERGE_FORMAT)
    features = LiveFeatures(int(window_s))
    features._history = _load_frame(history)
    features._flaps = _load_frame(flaps)
    return SessionMerger.load(int(window_s), merger), features
