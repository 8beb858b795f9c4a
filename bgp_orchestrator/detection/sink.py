"""Aggregates conflict observations per key and decides which need writing.

Within a batch, observations of one conflict merge (first/last seen, peers).
Across batches, a conflict already written is written again only when it
gains a peer, changes resolution, or its last-seen time moved by more than
``refresh_s``: a full-table resend that repeats a known problem a hundred
thousand times costs a hundred thousand dictionary lookups, not writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bgp_orchestrator.detection.conflict import SEVERITY_RANK, Conflict

MAX_PEERS = 100


@dataclass
class Aggregate:
    conflict: Conflict
    first_seen: float
    last_seen: float
    peers: set[str] = field(default_factory=set)

    def merge(self, c: Conflict) -> None:
        self.first_seen = min(self.first_seen, c.seen_at)
        if c.seen_at >= self.last_seen:
            self.last_seen = c.seen_at
            if SEVERITY_RANK[c.severity] >= SEVERITY_RANK[self.conflict.severity]:
                self.conflict = c
        if len(self.peers) < MAX_PEERS:
            self.peers.add(c.peer)


def aggregate(conflicts: Iterable[Conflict]) -> list[Aggregate]:
    """One aggregate per (key, resolved) in first-seen order."""
    out: dict[tuple[str, bool], Aggregate] = {}
    for c in conflicts:
        agg = out.get((c.key, c.resolved))
        if agg is None:
            out[(c.key, c.resolved)] = Aggregate(c, c.seen_at, c.seen_at, {c.peer})
        else:
            agg.merge(c)
    return list(out.values())


class WriteFilter:
    """Remembers what was written, to skip writes that would change nothing."""

    def __init__(self, refresh_s: float = 60.0, max_entries: int = 500_000) -> None:
        self.refresh_s = refresh_s
        self.max_entries = max_entries
        self._written: dict[tuple[str, bool], tuple[float, frozenset[str]]] = {}

    def needed(self, aggregates: list[Aggregate]) -> list[Aggregate]:
        out = []
        for agg in aggregates:
            key = (agg.conflict.key, agg.conflict.resolved)
            seen = self._written.get(key)
            if (
                seen is None
                or agg.last_seen - seen[0] > self.refresh_s
                or (len(seen[1]) < MAX_PEERS and not agg.peers <= seen[1])
            ):
                out.append(agg)
        return out

    def written(self, aggregates: list[Aggregate]) -> None:
        if len(self._written) > self.max_entries:
            self._written.clear()
        for agg in aggregates:
            key = (agg.conflict.key, agg.conflict.resolved)
            old = self._written.get(key)
            peers = frozenset(agg.peers) if old is None else old[1] | agg.peers
            self._written[key] = (agg.last_seen, frozenset(list(peers)[:MAX_PEERS]))
