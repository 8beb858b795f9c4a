"""Window counts per BGP session from a stream of updates.

:class:`WindowAggregator` is fed updates in (roughly) time order and emits, for
every closed window, one row per session it knows (dense: a quiet session gets
a row of zeros, so rolling features see the quiet too). It keeps each session's
current routes (prefix -> hash of the AS path) to count path changes and the
prefixes held: about 100 bytes per route.

Besides :data:`BASE_COLUMNS`, each row carries ``distinct_origins`` (origin ASNs
announced in the window; an AS_SET origin counts as one) for the metric series;
:func:`~bgp_orchestrator.flaps.features.derive_features` ignores it.

With ``partial=True`` (one partition's share of a session's counts,
:mod:`bgp_orchestrator.sessionstats.partials`) rows are sparse instead: only the
sessions that carried an update in the window, as wire rows (lists), origins
included. A quiet session's partial is zeros and the routes it held before, which
the merge already knows; sending it anyway made every partition send a row for
every session it ever saw, each window: on a stream of 80,000 peers, more rows than
updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bgp_orchestrator.bgp.update import AsPathElement, Kind, Update, origin
from bgp_orchestrator.flaps.features import BASE_COLUMNS, ENTITY


@dataclass(slots=True)
class _Session:
    peer_asn: int
    routes: dict[str, int] = field(default_factory=dict)
    announcements: int = 0
    withdrawals: int = 0
    prefixes: set[str] = field(default_factory=set)
    origins: set[int] = field(default_factory=set)
    #: AS_SET origins, apart: the ASN list goes out as is (no per-element check)
    origin_sets: set[tuple[int, ...]] = field(default_factory=set)
    path_len_sum: int = 0
    path_len_count: int = 0
    path_changes: int = 0
    downs: int = 0
    ups: int = 0

    def counts(self) -> tuple[int, ...]:
        return (
            self.announcements,
            self.withdrawals,
            len(self.prefixes),
            self.path_len_sum,
            self.path_len_count,
            self.path_changes,
            self.downs,
            self.ups,
            len(self.routes),
        )

    def reset(self) -> None:
        self.announcements = self.withdrawals = 0
        self.path_len_sum = self.path_len_count = self.path_changes = 0
        self.downs = self.ups = 0
        self.prefixes = set()
        self.origins = set()
        self.origin_sets = set()

    def distinct_origins(self) -> int:
        return len(self.origins) + len(self.origin_sets)

    def add_origin(self, announced_by: AsPathElement | None) -> None:
        if type(announced_by) is int:
            self.origins.add(announced_by)
        elif announced_by is not None:
            self.origin_sets.add(announced_by)  # type: ignore[arg-type]


#: Extra key of every emitted row: distinct origin ASNs announced in the window.
ORIGINS = "distinct_origins"


def session_id(update: Update) -> str:
    """The session an update came over: ``collector|peer address``."""
    return update.peer_key


def _path_length(update: Update) -> int:
    # An AS_SET counts as one hop (RFC 4271 9.1.2.2).
    return len(update.as_path)


class WindowAggregator:
    """Incremental window counts; see the module docstring.

    Updates older than the open window are counted in the open window (late
    data is not dropped); ``late`` counts them.
    """

    def __init__(self, window_s: int, *, partial: bool = False) -> None:
        """``partial``: rows are the wire rows of the sessions touched in the window
        (see the module docstring), to be merged with other partitions'."""
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.partial = partial
        self._sessions: dict[str, _Session] = {}
        self._open: int | None = None  # start (epoch s) of the open window
        self.late = 0

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def _window_of(self, timestamp: float) -> int:
        return int(timestamp // self.window_s) * self.window_s

    def add(self, update: Update) -> list[Any]:
        """Count one update; returns the rows of any windows it closed."""
        start = self._window_of(update.timestamp)
        closed: list[Any] = []
        if self._open is None:
            self._open = start
        elif start > self._open:
            closed = self.close_until(start)
        elif start < self._open:
            self.late += 1
        key = session_id(update)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(update.peer_asn)
        kind = update.kind
        if kind == Kind.ANNOUNCE:
            session.announcements += 1
            session.prefixes.add(update.prefix)
            session.path_len_sum += _path_length(update)
            session.path_len_count += 1
            session.add_origin(origin(update.as_path))
            digest = hash(update.as_path)
            before = session.routes.get(update.prefix)
            if before is not None and before != digest:
                session.path_changes += 1
            session.routes[update.prefix] = digest
        elif kind == Kind.WITHDRAW:
            session.withdrawals += 1
            session.prefixes.add(update.prefix)
            session.routes.pop(update.prefix, None)
        elif kind == Kind.PEER_DOWN:
            session.downs += 1
            session.routes.clear()  # a session that goes down loses its routes
        elif kind == Kind.PEER_UP:
            session.ups += 1
        return closed

    def close_until(self, start: int) -> list[Any]:
        """Close every open window that starts before ``start`` (epoch seconds)."""
        rows: list[Any] = []
        while self._open is not None and self._open < start:
            rows.extend(self._emit_partial() if self.partial else self._emit(self._open))
            self._open += self.window_s
        return rows

    def flush(self) -> list[Any]:
        """Close the open window (at the end of a finite stream)."""
        if self._open is None:
            return []
        return self.close_until(self._open + self.window_s)

    def _emit(self, start: int) -> Iterator[dict[str, Any]]:
        when = datetime.fromtimestamp(start, UTC)
        for key, session in self._sessions.items():
            row: dict[str, Any] = dict(zip(BASE_COLUMNS, session.counts(), strict=True))
            row[ENTITY] = key
            row["peer_asn"] = session.peer_asn
            row["window_start"] = when
            row[ORIGINS] = session.distinct_origins()
            session.reset()
            yield row

    def _emit_partial(self) -> list[list[Any]]:
        """Wire rows (:func:`bgp_orchestrator.sessionstats.partials.wire_row`) of the
        sessions that carried an update in the window."""
        rows = []
        for key, session in self._sessions.items():
            if not (session.announcements or session.withdrawals or session.downs or session.ups):
                continue
            rows.append(
                [
                    key,
                    session.peer_asn,
                    *session.counts(),
                    list(session.origins),
                    [list(o) for o in session.origin_sets],
                ]
            )
            session.reset()
        return rows


def window_counts(updates: Iterable[Update], window_s: int) -> list[dict[str, Any]]:
    """Every window's counts of a finite stream of updates."""
    aggregator = WindowAggregator(window_s)
    rows: list[dict[str, Any]] = []
    for update in updates:
        rows.extend(aggregator.add(update))
    rows.extend(aggregator.flush())
    return rows
