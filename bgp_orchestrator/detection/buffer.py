"""The detection worker's pending conflict writes: tenant conflicts first, global ones in segments.

Tenant conflicts (a hijack of a customer's prefix) are written after every
batch, before anything else: they are few and they are what an operator is
paged for. Global observations are merged per row in an open buffer, which
is closed into a *segment* that remembers the positions it covers whenever
the writer is idle (so, in quiet times, after every batch: low latency) and
at each commit point (so, in a storm, once a second: more observations merged
per row). Segments are written oldest first, at most
``rows_per_step`` rows per step of the consume loop, so that a storm of
200,000 rows never holds the loop (or the tenant conflicts behind it) for
longer than one bounded statement. A segment's positions become committable
when its last row is stored. The worker pauses consumption while the global
backlog exceeds its cap (back-pressure) instead of growing without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from bgp_orchestrator.detection.sink import Aggregate, WriteFilter
from bgp_orchestrator.storage import conflicts as conflict_store
from bgp_orchestrator.storage.database import Database

RowKey = tuple[str, bool]


@dataclass
class Segment:
    """Global rows of one commit interval and the positions they complete."""

    rows: list[Aggregate]
    positions: dict[int, int]
    #: partition -> (offset, state blob) taken when the segment closed, saved when done
    checkpoints: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    written: int = 0

    @property
    def remaining(self) -> int:
        return len(self.rows) - self.written


def _merge(into: dict[RowKey, Aggregate], aggregates: Iterable[Aggregate]) -> None:
    for agg in aggregates:
        key = (agg.key, agg.conflict.resolved)
        old = into.get(key)
        if old is None:
            into[key] = agg
        else:
            old.absorb(agg)


class ConflictBuffer:
    def __init__(self, db: Database, *, rows_per_step: int = 2000, refresh_s: float = 60.0) -> None:
        self.db = db
        self.rows_per_step = rows_per_step
        self.filter = WriteFilter(refresh_s)
        self._tenant: dict[RowKey, Aggregate] = {}
        self._global: dict[RowKey, Aggregate] = {}
        self._segments: deque[Segment] = deque()
        self.tenant_written = 0
        self.global_written = 0

    def add(self, aggregates: Iterable[Aggregate]) -> None:
        tenant: list[Aggregate] = []
        global_: list[Aggregate] = []
        for agg in aggregates:
            (global_ if agg.is_global else tenant).append(agg)
        _merge(self._tenant, tenant)
        _merge(self._global, global_)

    @property
    def tenant_pending(self) -> int:
        return len(self._tenant)

    @property
    def global_backlog(self) -> int:
        """Global rows not yet stored (open buffer and closed segments)."""
        return len(self._global) + sum(s.remaining for s in self._segments)

    @property
    def segments(self) -> int:
        return len(self._segments)

    async def write_tenant(self) -> int:
        """Store every pending tenant conflict; on failure they stay pending."""
        if not self._tenant:
            return 0
        rows = self.filter.needed(list(self._tenant.values()))
        if rows:
            async with self.db.transaction() as conn:
                await conflict_store.upsert(conn, rows)
            self.filter.written(rows)
        self._tenant.clear()
        self.tenant_written += len(rows)
        return len(rows)

    def close_segment(
        self, positions: dict[int, int], checkpoints: dict[int, tuple[int, bytes]] | None = None
    ) -> None:
        """Close the open global buffer into a segment completing ``positions``."""
        rows = self.filter.needed(list(self._global.values()))
        self._global = {}
        self._segments.append(Segment(rows, dict(positions), checkpoints or {}))

    async def write_global(self, limit: int | None = None) -> list[Segment]:
        """Store up to ``limit`` (default ``rows_per_step``; 0 = all) global rows, oldest
        segment first; returns the segments completed."""
        unlimited = limit == 0
        budget = self.rows_per_step if limit is None else limit
        done: list[Segment] = []
        while self._segments:
            segment = self._segments[0]
            if segment.remaining:
                if not unlimited and budget <= 0:
                    break
                take = segment.remaining if unlimited else min(segment.remaining, budget)
                chunk = segment.rows[segment.written : segment.written + take]
                async with self.db.transaction() as conn:
                    await conflict_store.upsert(conn, chunk)
                self.filter.written(chunk)
                segment.written += take
                self.global_written += take
                budget -= take
            if segment.remaining == 0:
                done.append(self._segments.popleft())
        return done
