"""Window closing for a multi-partition update stream (pure: no Kafka, no clock of its own).

``bgp.updates`` is partitioned by prefix, so one session's updates arrive over
every partition, and partitions are read at different paces. :class:`WindowStream`
feeds a :class:`~bgp_orchestrator.flaps.windows.WindowAggregator` in window order
anyway, and decides when a window is complete:

* **Watermark.** While some partitions still have a backlog, event time has
  reached the oldest of their newest timestamps. When every partition is
  caught up (the stream is quiet), event time is taken to run on with the
  clock from the newest update seen, so a session that falls silent (or a
  whole silent stream) still gets its zero rows.
* A window closes once the watermark passes its end plus ``grace_s``. Updates
  of later windows wait in a buffer until then; updates of already closed
  windows are counted in the open one (``late``), as the aggregator does.
* A partition whose newest update is past the open window's end plus grace
  has given all it must for that window: :meth:`ahead` tells the consumer to
  pause it, which bounds the buffer during a backlog.
* Session events (up/down) are published to every partition; each is counted
  once.

:meth:`committable` gives, per partition, the offset below which every
record's updates belong to closed windows: what may be committed once those
windows were handed over.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.windows import WindowAggregator

_SESSION_EVENTS = (Kind.PEER_UP, Kind.PEER_DOWN)


@dataclass(frozen=True)
class ClosedWindow:
    start: int  # epoch seconds
    rows: list[Any]  # row dicts, or wire rows of a partial stream


class WindowStream:
    def __init__(
        self,
        window_s: int,
        grace_s: float,
        *,
        skip_until: int | None = None,
        partial: bool = False,
    ) -> None:
        """``skip_until``: start of the newest window already handed over (a restart):
        updates of that window and earlier ones are skipped. ``partial``: closed windows
        hold the wire rows of the sessions touched (partial windows, :mod:`.partials`)."""
        if grace_s < 0:
            raise ValueError(f"grace_s must not be negative, got {grace_s}")
        self.window_s = window_s
        self.grace_s = grace_s
        self.skip_until = skip_until
        self.aggregator = WindowAggregator(window_s, partial=partial)
        self.open: int | None = None  # start of the window being counted
        self.latest: dict[int, float] = {}  # partition -> newest event time seen
        self.duplicates = 0  # session events seen on a second partition
        self.skipped = 0  # updates of windows handed over before a restart
        self._pending: list[Update] = []
        self._newest: float | None = None
        self._newest_at = 0.0  # clock reading when _newest last moved
        self._records: dict[int, deque[tuple[int, int]]] = {}  # partition -> (offset, window)
        self._next: dict[int, int] = {}  # partition -> offset after the last record offered
        self._events: dict[tuple[int, float, str], int] = {}  # session event -> its window

    def window_of(self, timestamp: float) -> int:
        return int(timestamp // self.window_s) * self.window_s

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --- input -------------------------------------------------------------------

    def offer(self, partition: int, offset: int, updates: Iterable[Update], now: float) -> int:
        """The updates of one record (in partition order); returns how many were counted
        or buffered."""
        window_s = self.window_s
        skip_until = self.skip_until
        opened = self.open
        events = self._events
        pending = self._pending
        counted: list[Update] = []  # of the open window (or late): counted at once
        newest_window = -1
        accepted = 0
        latest = self.latest.get(partition, -math.inf)
        newest = -math.inf if self._newest is None else self._newest
        for update in updates:
            timestamp = update.timestamp
            window = int(timestamp // window_s) * window_s
            if skip_until is not None and window <= skip_until:
                self.skipped += 1
                continue
            if update.kind in _SESSION_EVENTS:
                key = (int(update.kind), timestamp, update.peer_key)
                if key in events:
                    self.duplicates += 1
                    continue
                events[key] = window
            accepted += 1
            # the window it is counted in: a late update counts in the open one
            if opened is not None and window <= opened:
                counted.append(update)
                window = opened
            else:
                pending.append(update)
            newest_window = max(newest_window, window)
            latest = max(latest, timestamp)
            if timestamp > newest:
                newest = timestamp
                self._newest_at = now
        if counted:
            self.aggregator.count(counted)
        if latest != -math.inf:
            self.latest[partition] = latest
        if newest != -math.inf:
            self._newest = newest
        self._records.setdefault(partition, deque()).append((offset, newest_window))
        self._next[partition] = offset + 1
        return accepted

    def forget(self, partition: int) -> None:
        """A partition was revoked: its records are no longer ours to commit."""
        self.latest.pop(partition, None)
        self._records.pop(partition, None)
        self._next.pop(partition, None)

    # --- time ----------------------------------------------------------------------

    def watermark(self, lagging: Iterable[int], now: float) -> float | None:
        """Event time every partition has reached (None: not known yet). ``lagging``:
        assigned partitions that have not delivered all they hold."""
        behind = list(lagging)
        if behind:
            values = [self.latest.get(p) for p in behind]
            if any(v is None for v in values):
                return None
            return min(v for v in values if v is not None)
        if self._newest is None:
            return None
        return self._newest + max(0.0, now - self._newest_at)

    def ahead(self, partition: int) -> bool:
        """True if the partition has delivered past what closing the open window needs."""
        if self.open is None:
            return False
        latest = self.latest.get(partition)
        return latest is not None and latest >= self.open + self.window_s + self.grace_s

    def advance(
        self, lagging: Iterable[int], now: float, *, at_least: float | None = None
    ) -> list[ClosedWindow]:
        """Close every window the watermark has passed (by its end plus grace).
        ``at_least``: event time other partitions reached, taken when none of this
        stream's partitions lags (a caught-up partition follows the others)."""
        behind = list(lagging)
        mark = self.watermark(behind, now)
        if at_least is not None and not behind and (mark is None or at_least > mark):
            mark = at_least
        if mark is None:
            return []
        if self.open is None:
            if not self._pending:
                return []
            self.open = min(self.window_of(u.timestamp) for u in self._pending)
            self._drain()
        closed: list[ClosedWindow] = []
        while mark >= self.open + self.window_s + self.grace_s:
            start = self.open
            rows = self.aggregator.close_until(start + self.window_s)
            self.open = start + self.window_s
            closed.append(ClosedWindow(start, rows))
            self._drain()
            for key in [k for k, w in self._events.items() if w < start]:
                del self._events[key]
        return closed

    def _drain(self) -> None:
        """Count the buffered updates of the open window (in arrival order)."""
        assert self.open is not None
        window_s, opened = self.window_s, self.open
        keep: list[Update] = []
        now: list[Update] = []
        for update in self._pending:
            if int(update.timestamp // window_s) * window_s <= opened:
                now.append(update)
            else:
                keep.append(update)
        self._pending = keep
        self.aggregator.count(now)

    # --- offsets -------------------------------------------------------------------

    def committable(self) -> dict[int, int]:
        """Per partition, the offset to commit: every record before it holds only
        updates of closed windows (or none)."""
        out: dict[int, int] = {}
        for partition, records in self._records.items():
            done = self.open if self.open is not None else 0
            while records and records[0][1] < done:
                records.popleft()
            out[partition] = records[0][0] if records else self._next[partition]
        return out
