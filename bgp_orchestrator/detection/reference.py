"""The reference snapshot detectors read: monitored prefixes, tenants, VRPs, AS relationships.

Built from PostgreSQL rows and operator files, replaced atomically on reload:
a detector always sees one consistent snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bgp_orchestrator.bgp.prefix import WIDTH, Net, parse_net
from bgp_orchestrator.reference.aspa import AspaIndex
from bgp_orchestrator.reference.asrel import Relationships
from bgp_orchestrator.reference.vrps import VrpIndex


@dataclass(frozen=True, slots=True)
class Monitored:
    tenant_id: int
    prefix: str
    net: Net
    origins: frozenset[int]
    max_length: int
    announced: bool
    #: this prefix's own upstreams and peers (the first hops allowed); None: the tenant's
    carriers: frozenset[int] | None = None
    #: of those, the upstreams (None: the tenant's)
    upstreams: frozenset[int] | None = None


@dataclass(frozen=True)
class Tenant:
    id: int
    asns: frozenset[int] = frozenset()
    #: neighbour ASN -> relationship ("upstream", "peer", "customer")
    neighbors: dict[int, str] = field(default_factory=dict)

    @property
    def carriers(self) -> frozenset[int]:
        """Neighbours that may be the first hop of the tenant's routes."""
        return frozenset(a for a, rel in self.neighbors.items() if rel in ("upstream", "peer"))

    @property
    def upstreams(self) -> frozenset[int]:
        return frozenset(a for a, rel in self.neighbors.items() if rel == "upstream")


class MonitoredIndex:
    """Covering lookups of monitored prefixes, by prefix length."""

    def __init__(self, items: Iterable[Monitored]) -> None:
        self._tables: dict[int, dict[int, dict[int, list[Monitored]]]] = {4: {}, 6: {}}
        self.items: list[Monitored] = []
        for m in items:
            self.items.append(m)
            self._tables[m.net.afi].setdefault(m.net.length, {}).setdefault(m.net.value, []).append(
                m
            )
        self._lengths = {afi: tuple(sorted(t)) for afi, t in self._tables.items()}
        # Every monitored prefix truncated to the shortest monitored length of its
        # family: a prefix whose truncation is not among them is covered by none
        # (most of a full table), found with one shift and one set lookup.
        self._roots: dict[int, tuple[int, frozenset[int]]] = {}
        for afi, lengths in self._lengths.items():
            if lengths:
                shift = WIDTH[afi] - lengths[0]
                roots = frozenset(v >> shift for t in self._tables[afi].values() for v in t)
                self._roots[afi] = (lengths[0], roots)
        self.by_prefix = {m.prefix: m for m in self.items}

    def __len__(self) -> int:
        return len(self.items)

    def covering(self, net: Net) -> list[Monitored]:
        """Monitored prefixes equal to or covering ``net``, most specific last."""
        root = self._roots.get(net.afi)
        if root is None or net.length < root[0]:
            if root is None:
                return []
        elif (net.value >> (WIDTH[net.afi] - root[0])) not in root[1]:
            return []
        lengths = self._lengths[net.afi]
        out: list[Monitored] = []
        tables = self._tables[net.afi]
        width = WIDTH[net.afi]
        for length in lengths:
            if length > net.length:
                break
            found = tables[length].get((net.value >> (width - length)) << (width - length))
            if found:
                out.extend(found)
        return out


@dataclass
class DetectionSettings:
    #: share of the peers that carried a monitored prefix which must withdraw it
    visibility_share: float = 0.5
    #: ignore visibility of prefixes seen by fewer peers than this
    visibility_min_peers: int = 3
    #: emit RPKI-invalid / bogon observations for prefixes no tenant monitors
    global_observations: bool = True
    #: judge route leaks on every path (analysis) instead of tenant-relevant ones
    leak_scope: str = "tenant"
    #: peers linked to more than this many peers are treated as possible partial transit
    open_peering_degree: int = 1000
    #: a MOAS needs the other origin to have been seen within this window
    moas_window_s: float = 3600.0
    #: route leaks below this confidence are observations (severity info), not alerts
    leak_min_confidence: float = 0.6
    #: route leaks: prefixes and peers of one leak are counted over this window
    leak_window_s: float = 300.0
    #: route leaks: a (leaker, receiver) pair first seen this long ago is long-standing
    leak_baseline_s: float = 3600.0


@dataclass
class Reference:
    monitored: MonitoredIndex = field(default_factory=lambda: MonitoredIndex(()))
    tenants: dict[int, Tenant] = field(default_factory=dict)
    vrps: VrpIndex | None = None
    relationships: Relationships | None = None
    settings: DetectionSettings = field(default_factory=DetectionSettings)
    version: str = "empty"
    aspas: AspaIndex | None = None

    def __post_init__(self) -> None:
        self.asn_tenants: dict[int, tuple[int, ...]] = {}
        for tenant in self.tenants.values():
            for asn in tenant.asns:
                self.asn_tenants[asn] = (*self.asn_tenants.get(asn, ()), tenant.id)


def own_neighbours(row: dict[str, Any]) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """A prefix's own (first hops, upstreams) from ``upstream_asns`` and ``peer_asns``;
    (None, None) when it names none and the tenant's list applies."""
    upstreams = [int(a) for a in row.get("upstream_asns") or ()]
    peers = [int(a) for a in row.get("peer_asns") or ()]
    if not upstreams and not peers:
        return None, None
    return frozenset(upstreams + peers), frozenset(upstreams)


def monitored_from_rows(rows: Iterable[dict[str, Any]]) -> MonitoredIndex:
    """Rows of the ``prefixes`` table (tenant_id, prefix, origin_asns, max_length, announced)."""
    items = []
    for row in rows:
        prefix = str(row["prefix"])
        carriers, upstreams = own_neighbours(row)
        items.append(
            Monitored(
                tenant_id=int(row["tenant_id"]),
                prefix=prefix,
                net=parse_net(prefix),
                origins=frozenset(int(a) for a in row["origin_asns"]),
                max_length=int(row["max_length"]),
                announced=bool(row["announced"]),
                carriers=carriers,
                upstreams=upstreams,
            )
        )
    return MonitoredIndex(items)
