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

from bgp_orchestrator.bgp.update import AsPathElement, Kind, Update
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
        #: the sessions that carried an update in the open window (partial rows)
        self._touched: dict[str, _Session] = {}
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
        if self._open is not None and start > self._open:
            closed = self.close_until(start)
        self.count((update,))
        return closed

    def count(self, updates: Iterable[Update]) -> None:  # noqa: PLR0915 - one loop, on purpose
        """Count updates in the open window (the first one opens it): updates of that
        window and late ones (of earlier windows; ``late`` counts them). A caller that
        closes windows itself (:meth:`close_until`, as
        :class:`~bgp_orchestrator.sessionstats.stream.WindowStream` does) counts a
        record's updates in one call: the loop keeps what it needs in locals, which
        matters at a few hundred thousand updates a second."""
        window_s = self.window_s
        sessions = self._sessions
        touched = self._touched
        opened = self._open
        late = 0
        announce, withdraw, down, up = Kind.ANNOUNCE, Kind.WITHDRAW, Kind.PEER_DOWN, Kind.PEER_UP
        try:
            for update in updates:
                start = int(update.timestamp // window_s) * window_s
                if opened is None:
                    opened = self._open = start
                elif start != opened:
                    if start > opened:
                        raise ValueError(
                            f"an update of window {start} counted in the open window "
                            f"{opened}: close the open window first"
                        )
                    late += 1
                key = update.peer_key  # the session: collector|peer address
                session = sessions.get(key)
                if session is None:
                    session = sessions[key] = _Session(update.peer_asn)
                touched[key] = session
                kind = update.kind
                if kind == announce:
                    path = update.as_path
                    prefix = update.prefix
                    session.announcements += 1
                    session.prefixes.add(prefix)
                    session.path_len_sum += len(path)  # an AS_SET counts as one hop
                    session.path_len_count += 1
                    if path:
                        last = path[-1]  # the origin (origin())
                        if type(last) is int:
                            session.origins.add(last)
                        else:
                            session.origin_sets.add(last)  # type: ignore[arg-type]
                    digest = hash(path)
                    routes = session.routes
                    before = routes.get(prefix)
                    if before is not None and before != digest:
                        session.path_changes += 1
                    routes[prefix] = digest
                elif kind == withdraw:
                    session.withdrawals += 1
                    session.prefixes.add(update.prefix)
                    session.routes.pop(update.prefix, None)
                elif kind == down:
                    session.downs += 1
                    session.routes.clear()  # a session that goes down loses its routes
                elif kind == up:
                    session.ups += 1
        finally:
            self.late += late

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

    def restore(self, key: str, session: _Session) -> None:
        """A session of a checkpoint (:mod:`bgp_orchestrator.sessionstats.snapshot`)."""
        self._sessions[key] = session
        if session.announcements or session.withdrawals or session.downs or session.ups:
            self._touched[key] = session

    def _emit(self, start: int) -> Iterator[dict[str, Any]]:
        self._touched = {}
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
        """Wire rows (``[session, peer ASN, *base counts, origin ASNs, AS_SET origins]``,
        :mod:`bgp_orchestrator.sessionstats.partials`) of the sessions that carried an
        update in the window."""
        rows = []
        touched, self._touched = self._touched, {}
        for key, session in touched.items():
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
