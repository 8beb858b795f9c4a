"""Aggregates conflict observations per key and decides which need writing.

Within a batch, observations of one conflict merge (first/last seen, peers).
Across batches, a conflict already written is written again only when it
gains a peer, changes resolution, or its last-seen time moved by more than
``refresh_s``: a full-table resend that repeats a known problem a hundred
thousand times costs a hundred thousand dictionary lookups, not writes.

Observations of prefixes no tenant owns (scope ``global``: RPKI-invalid,
bogon, MOAS routes anywhere in the table) are aggregated per prefix and type,
not per origin or path: a leak or MOAS storm touching 200,000 prefix-origin
pairs becomes at most one row per prefix and type, carrying the number of
observations and a capped sample of origins and paths. Tenant conflicts keep
their full identity (:attr:`Conflict.key`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bgp_orchestrator.detection.conflict import SEVERITY_RANK, Conflict

MAX_PEERS = 100
#: Peers kept with a global observation: a sample, not the audience.
GLOBAL_PEERS = 20
#: Origins and AS paths kept with a global observation.
SAMPLE_ORIGINS = 20
SAMPLE_PATHS = 5


def _origins_of(c: Conflict) -> list[int]:
    """The origins an observation names: its own, and those its details list (MOAS)."""
    out = [c.origin_asn] if c.origin_asn is not None else []
    listed = c.details.get("origins")
    if isinstance(listed, list):
        out.extend(o for o in listed if isinstance(o, int))
    return out


def storage_key(c: Conflict) -> str:
    """The row a conflict observation belongs to."""
    if c.tenant_id is None:
        return f"0|{c.type.value}|{c.prefix}"
    return c.key


@dataclass
class Aggregate:
    conflict: Conflict
    first_seen: float
    last_seen: float
    peers: set[str] = field(default_factory=set)
    key: str = ""
    observations: int = 1
    origins: set[int] = field(default_factory=set)
    paths: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, c: Conflict) -> Aggregate:
        agg = cls(c, c.seen_at, c.seen_at, {c.peer}, storage_key(c))
        if c.tenant_id is None:
            agg.origins = set(_origins_of(c)[:SAMPLE_ORIGINS])
            agg.paths = [c.as_path] if c.as_path else []
        return agg

    @property
    def is_global(self) -> bool:
        return self.conflict.tenant_id is None

    @property
    def peer_cap(self) -> int:
        return GLOBAL_PEERS if self.is_global else MAX_PEERS

    def merge(self, c: Conflict) -> None:
        self.first_seen = min(self.first_seen, c.seen_at)
        if c.seen_at >= self.last_seen:
            self.last_seen = c.seen_at
            if SEVERITY_RANK[c.severity] >= SEVERITY_RANK[self.conflict.severity]:
                self.conflict = c
        if len(self.peers) < self.peer_cap:
            self.peers.add(c.peer)
        if self.is_global:
            self.observations += 1
            for origin in _origins_of(c):
                if len(self.origins) >= SAMPLE_ORIGINS:
                    break
                self.origins.add(origin)
            if c.as_path and len(self.paths) < SAMPLE_PATHS and c.as_path not in self.paths:
                self.paths.append(c.as_path)

    def absorb(self, other: Aggregate) -> None:
        """Merge a later aggregate of the same row (buffers that span batches)."""
        self.merge(other.conflict)
        self.observations += other.observations - 1
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        for peer in other.peers:
            if len(self.peers) >= self.peer_cap:
                break
            self.peers.add(peer)
        for origin in other.origins:
            if len(self.origins) >= SAMPLE_ORIGINS:
                break
            self.origins.add(origin)
        for path in other.paths:
            if len(self.paths) >= SAMPLE_PATHS:
                break
            if path not in self.paths:
                self.paths.append(path)

    def details(self) -> dict[str, object]:
        """What the row's ``details`` hold: the conflict's, plus the sample of a global one."""
        if not self.is_global:
            return self.conflict.details
        return {
            **self.conflict.details,
            "observations": self.observations,
            "origins": sorted(self.origins),
            "sample_paths": list(self.paths),
        }


def aggregate(conflicts: Iterable[Conflict]) -> list[Aggregate]:
    """One aggregate per (row, resolved) in first-seen order."""
    out: dict[tuple[str, bool], Aggregate] = {}
    for c in conflicts:
        key = (storage_key(c), c.resolved)
        agg = out.get(key)
        if agg is None:
            out[key] = Aggregate.of(c)
        else:
            agg.merge(c)
    return list(out.values())


class WriteFilter:
    """Remembers what was written, to skip writes that would change nothing."""

    def __init__(self, refresh_s: float = 60.0, max_entries: int = 500_000) -> None:
        self.refresh_s = refresh_s
        self.max_entries = max_entries
        self._written: dict[tuple[str, bool], tuple[float, frozenset[str], frozenset[int]]] = {}

    def needed(self, aggregates: list[Aggregate]) -> list[Aggregate]:
        out = []
        for agg in aggregates:
            seen = self._written.get((agg.key, agg.conflict.resolved))
            if (
                seen is None
                or agg.last_seen - seen[0] > self.refresh_s
                or (len(seen[1]) < agg.peer_cap and not agg.peers <= seen[1])
                or (len(seen[2]) < SAMPLE_ORIGINS and not agg.origins <= seen[2])
            ):
                out.append(agg)
        return out

    def written(self, aggregates: list[Aggregate]) -> None:
        if len(self._written) > self.max_entries:
            self._written.clear()
        for agg in aggregates:
            key = (agg.key, agg.conflict.resolved)
            old = self._written.get(key)
            peers = frozenset(agg.peers) if old is None else old[1] | agg.peers
            origins = frozenset(agg.origins) if old is None else old[2] | agg.origins
            self._written[key] = (
                agg.last_seen,
                frozenset(list(peers)[: agg.peer_cap]),
                frozenset(list(origins)[:SAMPLE_ORIGINS]),
            )
