"""Window counts per BGP session from a stream of updates.

:class:`WindowAggregator` is fed updates in (roughly) time order and emits, for
every closed window, one row per session it knows (dense: a quiet session gets
a row of zeros, so rolling features see the quiet too). It keeps each session's
current routes (prefix -> hash of the AS path) to count path changes and the
prefixes held: about 100 bytes per route.

Besides :data:`BASE_COLUMNS`, each row carries ``distinct_origins`` (origin ASNs
announced in the window; an AS_SET origin counts as one) for the metric series;
:func:`~bgp_orchestrator.flaps.features.derive_features` ignores it.
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
    origins: set[AsPathElement] = field(default_factory=set)
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


#: Extra key of every emitted row: distinct origin ASNs announced in the window.
ORIGINS = "distinct_origins"
#: Extra key with ``origin_sets``: the origins themselves (ASNs; an AS_SET a tuple).
ORIGIN_SET = "origin_set"


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

    def __init__(self, window_s: int, *, origin_sets: bool = False) -> None:
        """``origin_sets``: rows carry the origins themselves (a list) under
        :data:`ORIGIN_SET` besides their count, so that partial windows of several
        partitions can be merged (:mod:`bgp_orchestrator.sessionstats.partials`)."""
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.origin_sets = origin_sets
        self._sessions: dict[str, _Session] = {}
        self._open: int | None = None  # start (epoch s) of the open window
        self.late = 0

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def _window_of(self, timestamp: float) -> int:
        return int(timestamp // self.window_s) * self.window_s

    def add(self, update: Update) -> list[dict[str, Any]]:
        """Count one update; returns the rows of any windows it closed."""
        start = self._window_of(update.timestamp)
        closed: list[dict[str, Any]] = []
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
            announced_by = origin(update.as_path)
            if announced_by is not None:
                session.origins.add(announced_by)
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

    def close_until(self, start: int) -> list[dict[str, Any]]:
        """Close every open window that starts before ``start`` (epoch seconds)."""
        rows: list[dict[str, Any]] = []
        while self._open is not None and self._open < start:
            rows.extend(self._emit(self._open))
            self._open += self.window_s
        return rows

    def flush(self) -> list[dict[str, Any]]:
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
            row[ORIGINS] = len(session.origins)
            if self.origin_sets:
                row[ORIGIN_SET] = list(session.origins)
            session.reset()
            yield row


def window_counts(updates: Iterable[Update], window_s: int) -> list[dict[str, Any]]:
    """Every window's counts of a finite stream of updates."""
    aggregator = WindowAggregator(window_s)
    rows: list[dict[str, Any]] = []
    for update in updates:
        rows.extend(aggregator.add(update))
    rows.extend(aggregator.flush())
    return rows
