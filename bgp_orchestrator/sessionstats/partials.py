"""Partial windows: one partition's counts of a window, sent keyed by session, merged.

``bgp.updates`` is keyed by prefix, so one partition holds *all* of a
(session, prefix) route history and nothing of the other prefixes. Per session
and window, a partition's counts therefore add up to the session's counts:

* announcements, withdrawals, AS-path lengths, path changes and the routes held
  (``prefix_count``) are per (session, prefix): partitions' counts are summed;
  ``distinct_prefixes`` too (a prefix lives on one partition);
* session events (down/up) are published to every partition: each partition
  counts every one of them, so the merge takes the largest count;
* ``distinct_origins`` is a set over prefixes of several partitions: partials
  carry the origins themselves and the merge counts their union.

Partials are sparse: a partition sends rows only for the sessions that carried an
update there in the window. A session quiet on a partition has zeros there and
the routes it held before, so the merge keeps, per session, each source's last
``prefix_count`` (:class:`KnownSessions`) and gives every session it ever heard of
a row each window, as one aggregator over the whole stream would: quiet sessions
get their zeros and the routes they still hold.

A partial stage (any number of replicas, partitions of ``bgp.updates`` spread
over them) closes each of its partitions' windows on that partition's own event
time and sends, per window, one record to every partition of the
session-windows topic, holding the rows of the sessions that map to it
(:func:`session_partition`). A merge stage (again any number of replicas)
waits until every source partition has reported a window, merges the rows and
derives the features (:mod:`~bgp_orchestrator.sessionstats.merge`). A partition
that has never carried an update sends heartbeats instead (``until``: it has
nothing before that time), so it holds no window back.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack  # type: ignore[import-untyped]

from bgp_orchestrator.errors import BgpoError
from bgp_orchestrator.flaps.features import BASE_COLUMNS, ENTITY
from bgp_orchestrator.flaps.windows import ORIGINS

#: 2: origins as two lists (ASNs, AS_SETs); 1 (still read): one list of both.
FORMAT = 2

#: Counts summed over partitions; the others take the largest partition's value.
SUMMED = (
    "announcements",
    "withdrawals",
    "distinct_prefixes",
    "path_len_sum",
    "path_len_count",
    "path_changes",
    "prefix_count",
)
EVENTS = ("downs", "ups")
assert set(SUMMED) | set(EVENTS) == set(BASE_COLUMNS)


class BadPartial(BgpoError):
    """A record of the session-windows topic that is not a partial window."""


@dataclass(frozen=True)
class Partial:
    """One record of the session-windows topic.

    ``window`` is None for a heartbeat. ``until``: the source has reported every
    window that starts before it.
    """

    source: int
    sources: int
    window: int | None
    until: int
    rows: list[list[Any]]


def session_partition(session: str, partitions: int) -> int:
    """The session-windows partition of a session (stable across processes)."""
    return zlib.crc32(session.encode()) % partitions


def split_rows(
    rows: Iterable[Sequence[Any]], partitions: int, cache: dict[str, int] | None = None
) -> list[list[Sequence[Any]]]:
    """Wire rows (``[session, peer ASN, *base counts, origin ASNs, AS_SET origins]``, as a partial
    :class:`~bgp_orchestrator.flaps.windows.WindowAggregator` emits them) of one
    window per session-windows partition (every partition has a list, possibly
    empty: the empty record still reports the window). ``cache``: session ->
    partition, kept by the caller across windows."""
    out: list[list[Sequence[Any]]] = [[] for _ in range(partitions)]
    known = {} if cache is None else cache
    for row in rows:
        session = row[0]
        target = known.get(session)
        if target is None:
            target = known[session] = session_partition(session, partitions)
        out[target].append(row)
    return out


def encode_window(
    source: int, sources: int, window: int, window_s: int, rows: Sequence[Sequence[Any]]
) -> bytes:
    data: bytes = msgpack.packb(
        [FORMAT, source, sources, window, window + window_s, rows], use_bin_type=True
    )
    return data


def encode_heartbeat(source: int, sources: int, until: int) -> bytes:
    data: bytes = msgpack.packb([FORMAT, source, sources, None, until, []], use_bin_type=True)
    return data


def decode(data: bytes) -> Partial:
    try:
        version, source, sources, window, until, rows = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BadPartial("bad-partial", f"not a partial window record: {exc}") from exc
    if version not in (1, FORMAT):
        raise BadPartial("bad-partial", f"partial window format {version}, expected {FORMAT}")
    if not (isinstance(source, int) and isinstance(sources, int) and 0 <= source < sources):
        raise BadPartial("bad-partial", f"source partition {source!r} of {sources!r}")
    if window is not None and not isinstance(window, int):
        raise BadPartial("bad-partial", f"window start {window!r} is not an integer")
    if not isinstance(until, int) or not isinstance(rows, list):
        raise BadPartial("bad-partial", "until must be an integer and rows a list")
    if version == 1:  # a record sent before the upgrade
        rows = [_split_origins(row) for row in rows]
    return Partial(source, sources, window, until, rows)


def _split_origins(row: list[Any]) -> list[Any]:
    *head, origins = row
    return [
        *head,
        [o for o in origins if not isinstance(o, list)],
        [o for o in origins if isinstance(o, list)],
    ]


_N = len(BASE_COLUMNS)
_SUMMED = [BASE_COLUMNS.index(c) for c in SUMMED if c != "prefix_count"]
_MAXED = [BASE_COLUMNS.index(c) for c in EVENTS]
_HELD = BASE_COLUMNS.index("prefix_count")


@dataclass
class KnownSessions:
    """Every session the merge has heard of: its peer ASN and, per source partition,
    the routes it held there at the end of the last window that source sent it in."""

    #: session -> [peer ASN, {source: prefix_count}]
    sessions: dict[str, list[Any]] = field(default_factory=dict)

    def dump(self) -> list[Any]:
        return [[s, asn, list(held.items())] for s, (asn, held) in self.sessions.items()]

    @classmethod
    def load(cls, data: list[Any]) -> KnownSessions:
        return cls({str(s): [int(asn), {int(k): int(v) for k, v in held}] for s, asn, held in data})


def merge_rows(
    window: int, partials: Mapping[int, Sequence[Sequence[Any]]], known: KnownSessions
) -> list[dict[str, Any]]:
    """The rows of one window (as one :class:`~bgp_orchestrator.flaps.windows.WindowAggregator`
    over the whole stream emits them, ``distinct_origins`` included) from every source's
    wire rows: one per session in ``known`` once the window's rows are added to it."""
    sessions = known.sessions
    merged: dict[str, tuple[list[int], set[int], set[tuple[int, ...]]]] = {}
    for source, rows in partials.items():
        for session, asn, *values in rows:
            counts, origins, origin_sets = values[:_N], values[_N], values[_N + 1]
            entry = sessions.get(session)
            if entry is None:
                entry = sessions[session] = [int(asn), {}]
            entry[1][source] = int(counts[_HELD])
            held = merged.get(session)
            if held is None:
                merged[session] = (list(counts), set(origins), {tuple(o) for o in origin_sets})
                continue
            total = held[0]
            for i in _SUMMED:
                total[i] += counts[i]
            for i in _MAXED:
                total[i] = max(total[i], counts[i])
            held[1].update(origins)
            held[2].update(tuple(o) for o in origin_sets)
    when = datetime.fromtimestamp(window, UTC)
    # Most sessions are quiet in most windows: their row is a copy of this one.
    quiet: dict[str, Any] = dict.fromkeys((*BASE_COLUMNS, ENTITY, "peer_asn", ORIGINS), 0)
    quiet["window_start"] = when
    out = []
    for session in sorted(sessions):
        asn, held_by_source = sessions[session]
        row = quiet.copy()
        touched = merged.get(session)
        if touched is not None:
            row.update(zip(BASE_COLUMNS, touched[0], strict=True))
            row[ORIGINS] = len(touched[1]) + len(touched[2])
        row["prefix_count"] = sum(held_by_source.values())
        row[ENTITY] = session
        row["peer_asn"] = asn
        out.append(row)
    return out
