"""The merge of partial windows for one partition of the session-windows topic (pure).

:class:`SessionMerger` collects the partial windows its sessions received from
every source partition (:mod:`.partials`) and gives out, in window order, each
window every source has reported, its rows merged. A source has reported a
window once it sent that window or a later one (sources close their windows in
order; a source whose first update is later had nothing for the earlier ones),
or a heartbeat past it. A window some source has still not reported
``timeout_s`` after its first partial arrived (on the merging replica's clock) is
merged with what arrived, and so is every pending window before it: a source that
never reports (its partition wedged, its state lost) holds the features back by
that long at most, not forever. Its partials arriving after that are dropped as
those of a merged window are (``duplicates``).

Partials are sparse (only the sessions a source saw updates of in the window):
:attr:`SessionMerger.known` keeps every session heard of and the routes each
source last said it held, and each merged window has a row for every one of them.

A partial of a window already merged (a source replaying after a restart from
an older checkpoint) is counted in ``duplicates`` and dropped: the window's
features were already handed over. Offsets: a record is done once its window
is merged (heartbeats at once); :meth:`committable` is the first record not done.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bgp_orchestrator.sessionstats.partials import KnownSessions, Partial, merge_rows


@dataclass
class MergedWindow:
    start: int
    rows: list[dict[str, Any]]
    #: False: merged on the timeout, without some source's partial
    complete: bool = True


@dataclass
class SessionMerger:
    window_s: int
    #: start of the newest window handed over (None: none yet)
    merged_until: int | None = None
    #: source partitions of the updates topic (known from the first record)
    sources: int | None = None
    #: per source, the end of the windows it has reported (every window starting before)
    reported: dict[int, int] = field(default_factory=dict)
    #: window start -> source -> wire rows
    pending: dict[int, dict[int, list[list[Any]]]] = field(default_factory=dict)
    duplicates: int = 0
    #: (offset, window start or None) of the records not yet done
    records: deque[tuple[int, int | None]] = field(default_factory=deque)
    next_offset: int | None = None
    #: window start -> clock reading when its first partial arrived (not saved: a
    #: restored merger waits the timeout again)
    waiting_since: dict[int, float] = field(default_factory=dict)
    #: every session heard of, with the routes each source last said it held (partials
    #: are sparse: a quiet session's row is made here)
    known: KnownSessions = field(default_factory=KnownSessions)

    def offer(self, offset: int, partial: Partial, now: float | None = None) -> None:
        self.next_offset = offset + 1
        if self.sources is None or partial.sources != self.sources:
            # The updates topic's partition count (grown: the new sources report too).
            self.sources = partial.sources
        previous = self.reported.get(partial.source)
        if previous is None or partial.until > previous:
            self.reported[partial.source] = partial.until
        window = partial.window
        if window is None:
            return  # a heartbeat: only what the source has reported
        if self.merged_until is not None and window <= self.merged_until:
            self.duplicates += 1
            return
        self.pending.setdefault(window, {})[partial.source] = partial.rows
        if now is not None:
            self.waiting_since.setdefault(window, now)
        self.records.append((offset, window))

    def complete_until(self) -> int | None:
        """Windows starting before this are reported by every source (None: not known)."""
        if self.sources is None or any(s not in self.reported for s in range(self.sources)):
            return None
        return min(self.reported[s] for s in range(self.sources))

    def ready(self, now: float | None = None, timeout_s: float | None = None) -> list[MergedWindow]:
        """Merge every pending window all sources have reported, oldest first; with a
        clock reading and a timeout, also those waiting for longer (and the ones before)."""
        until = self.complete_until()
        limit = until
        if now is not None and timeout_s is not None:
            for start in self.pending:
                since = self.waiting_since.setdefault(start, now)
                if now - since >= timeout_s and (limit is None or start + self.window_s > limit):
                    limit = start + self.window_s
        if limit is None:
            return []
        out = []
        for start in sorted(w for w in self.pending if w + self.window_s <= limit):
            sources = self.pending.pop(start)
            self.waiting_since.pop(start, None)
            complete = until is not None and start + self.window_s <= until
            out.append(MergedWindow(start, merge_rows(start, sources, self.known), complete))
            self.merged_until = start
        return out

    def reported_until(self) -> int | None:
        """The furthest any source has reported (None: none yet)."""
        return max(self.reported.values(), default=None)

    def committable(self) -> int | None:
        done = self.merged_until
        while self.records and (
            self.records[0][1] is None or (done is not None and self.records[0][1] <= done)
        ):
            self.records.popleft()
        return self.records[0][0] if self.records else self.next_offset

    # --- checkpoints ------------------------------------------------------------------

    def dump(self) -> list[Any]:
        return [
            self.merged_until,
            self.sources,
            list(self.reported.items()),
            [[w, list(by_source.items())] for w, by_source in self.pending.items()],
            self.duplicates,
            self.known.dump(),
        ]

    @classmethod
    def load(cls, window_s: int, data: list[Any]) -> SessionMerger:
        """A merger :meth:`dump` saved (one saved before it kept its known sessions
        starts with none: the routes quiet sessions hold warm up again)."""
        merged_until, sources, reported, pending, duplicates, *rest = data
        return cls(
            window_s,
            merged_until=merged_until,
            sources=sources,
            reported={int(s): int(u) for s, u in reported},
            pending={int(w): {int(s): rows for s, rows in by} for w, by in pending},
            duplicates=int(duplicates),
            known=KnownSessions.load(rest[0]) if rest else KnownSessions(),
        )
