"""The merge of partial windows for one partition of the session-windows topic (pure).

:class:`SessionMerger` collects the partial windows its sessions received from
every source partition (:mod:`.partials`) and gives out, in window order, each
window every source has reported, its rows merged. A source has reported a
window once it sent that window or a later one (sources close their windows in
order; a source whose first update is later had nothing for the earlier ones),
or a heartbeat past it.

A partial of a window already merged (a source replaying after a restart from
an older checkpoint) is counted in ``duplicates`` and dropped: the window's
features were already handed over. Offsets: a record is done once its window
is merged (heartbeats at once); :meth:`committable` is the first record not done.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bgp_orchestrator.sessionstats.partials import Partial, merge_rows


@dataclass
class MergedWindow:
    start: int
    rows: list[dict[str, Any]]


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

    def offer(self, offset: int, partial: Partial) -> None:
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
        self.records.append((offset, window))

    def complete_until(self) -> int | None:
        """Windows starting before this are reported by every source (None: not known)."""
        if self.sources is None or any(s not in self.reported for s in range(self.sources)):
            return None
        return min(self.reported[s] for s in range(self.sources))

    def ready(self) -> list[MergedWindow]:
        """Merge every pending window all sources have reported, oldest first."""
        until = self.complete_until()
        if until is None:
            return []
        out = []
        for start in sorted(w for w in self.pending if w + self.window_s <= until):
            sources = self.pending.pop(start)
            out.append(MergedWindow(start, merge_rows(start, sources.values())))
            self.merged_until = start
        return out

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
        ]

    @classmethod
    def load(cls, window_s: int, data: list[Any]) -> SessionMerger:
        merged_until, sources, reported, pending, duplicates = data
        return cls(
            window_s,
            merged_until=merged_until,
            sources=sources,
            reported={int(s): int(u) for s, u in reported},
            pending={int(w): {int(s): rows for s, rows in by} for w, by in pending},
            duplicates=int(duplicates),
        )
