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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack  # type: ignore[import-untyped]

from bgp_orchestrator.bgp.update import AsPathElement
from bgp_orchestrator.errors import BgpoError
from bgp_orchestrator.flaps.features import BASE_COLUMNS, ENTITY
from bgp_orchestrator.flaps.windows import ORIGIN_SET, ORIGINS

FORMAT = 1

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


def wire_row(row: Mapping[str, Any]) -> list[Any]:
    """A window row as sent: session, peer ASN, the base counts, the origins."""
    origins = [list(o) if isinstance(o, tuple) else o for o in row[ORIGIN_SET]]
    return [row[ENTITY], row["peer_asn"], *(row[c] for c in BASE_COLUMNS), origins]


def split_rows(rows: Iterable[Mapping[str, Any]], partitions: int) -> list[list[list[Any]]]:
    """The wire rows of one window per session-windows partition (every partition has
    a list, possibly empty: the empty record still reports the window)."""
    out: list[list[list[Any]]] = [[] for _ in range(partitions)]
    for row in rows:
        out[session_partition(str(row[ENTITY]), partitions)].append(wire_row(row))
    return out


def encode_window(
    source: int, sources: int, window: int, window_s: int, rows: list[list[Any]]
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
    if version != FORMAT:
        raise BadPartial("bad-partial", f"partial window format {version}, expected {FORMAT}")
    if not (isinstance(source, int) and isinstance(sources, int) and 0 <= source < sources):
        raise BadPartial("bad-partial", f"source partition {source!r} of {sources!r}")
    if window is not None and not isinstance(window, int):
        raise BadPartial("bad-partial", f"window start {window!r} is not an integer")
    if not isinstance(until, int) or not isinstance(rows, list):
        raise BadPartial("bad-partial", "until must be an integer and rows a list")
    return Partial(source, sources, window, until, rows)


def _origin(value: Any) -> AsPathElement:
    return tuple(value) if isinstance(value, list) else int(value)


def merge_rows(window: int, partials: Iterable[Sequence[Sequence[Any]]]) -> list[dict[str, Any]]:
    """The rows of one window (as :class:`~bgp_orchestrator.flaps.windows.WindowAggregator`
    emits them, ``distinct_origins`` included) from every source's wire rows."""
    n = len(BASE_COLUMNS)
    summed = [BASE_COLUMNS.index(c) for c in SUMMED]
    maxed = [BASE_COLUMNS.index(c) for c in EVENTS]
    merged: dict[str, tuple[int, list[int], set[AsPathElement]]] = {}
    for rows in partials:
        for session, asn, *values in rows:
            counts, origins = values[:n], values[n]
            held = merged.get(session)
            if held is None:
                merged[session] = (int(asn), list(counts), {_origin(o) for o in origins})
                continue
            total = held[1]
            for i in summed:
                total[i] += counts[i]
            for i in maxed:
                total[i] = max(total[i], counts[i])
            held[2].update(_origin(o) for o in origins)
    when = datetime.fromtimestamp(window, UTC)
    out = []
    for session in sorted(merged):
        asn, counts, origins = merged[session]
        row: dict[str, Any] = dict(zip(BASE_COLUMNS, counts, strict=True))
        row[ENTITY] = session
        row["peer_asn"] = asn
        row["window_start"] = when
        row[ORIGINS] = len(origins)
        out.append(row)
    return out
