"""The simulated world: an AS hierarchy, prefixes with origins and ROAs, tenants, 80,000 peers.

Everything is derived from a seed, so a run can be repeated. The world is
consistent on purpose: background paths are valley-free along the generated
relationships, origins match their ROAs or have none, nothing is a bogon, and
tenants' prefixes are announced by their own ASN through their configured
upstreams. So every conflict the detectors raise comes from an injected
incident, which is what makes recall and precision measurable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

TIER1 = 10
TIER2 = 300
STUBS = 20_000


@dataclass(frozen=True)
class Peer:
    collector: str
    address: str
    asn: int

    @property
    def key(self) -> str:
        return f"{self.collector}|{self.address}"


@dataclass
class SimTenant:
    id: int
    slug: str
    asn: int
    upstreams: tuple[int, ...]
    prefixes: list[str]
    unannounced: str


@dataclass
class World:
    seed: int
    tier1: list[int]
    tier2: list[int]
    stubs: list[int]
    #: stub or tier-2 -> its providers
    providers: dict[int, tuple[int, ...]]
    prefixes: list[str]
    origins: list[int]
    roas: dict[int, int]  # prefix index -> max length of its ROA (origin = its origin)
    peers: list[Peer]
    tenants: list[SimTenant]
    relationships: list[str] = field(default_factory=list)

    # --- paths ----------------------------------------------------------------------

    def uphill(self, asn: int, rng: random.Random) -> list[int]:
        """asn, then providers up to a tier-1 (customer -> provider links)."""
        chain = [asn]
        while chain[-1] in self.providers:
            chain.append(rng.choice(self.providers[chain[-1]]))
        return chain

    def path(self, peer_asn: int, origin: int, rng: random.Random) -> tuple[int, ...]:
        """A valley-free path from the peer (first) to the origin (last)."""
        up_from_origin = self.uphill(origin, rng)  # origin ... tier1
        up_from_peer = self.uphill(peer_asn, rng)  # peer ... tier1
        if peer_asn in up_from_origin:  # the peer is a provider of the origin
            return tuple(reversed(up_from_origin[: up_from_origin.index(peer_asn) + 1]))
        top_o, top_p = up_from_origin[-1], up_from_peer[-1]
        down = list(reversed(up_from_origin))  # tier1 ... origin
        if top_o == top_p:
            return (*up_from_peer[:-1], *down)
        return (*up_from_peer, *down)  # tier-1s peer with each other

    def tenant_upstream(self, tenant: SimTenant, peer_asn: int) -> int:
        """The upstream through which ``peer_asn`` reaches the tenant: stable, as a best
        path is, so that per-upstream visibility changes only when an incident says so."""
        return tenant.upstreams[(peer_asn * 2654435761 + tenant.asn) % len(tenant.upstreams)]

    def tenant_path(self, tenant: SimTenant, peer_asn: int, rng: random.Random) -> tuple[int, ...]:
        upstream = self.tenant_upstream(tenant, peer_asn)
        via = self.path(peer_asn, upstream, rng)
        return (*via, tenant.asn)

    # --- exports -----------------------------------------------------------------------

    def vrp_csv(self) -> str:
        lines = ["ASN,IP Prefix,Max Length,Trust Anchor"]
        for index, max_length in self.roas.items():
            lines.append(f"AS{self.origins[index]},{self.prefixes[index]},{max_length},sim")
        for t in self.tenants:
            for prefix in t.prefixes:
                lines.append(f"AS{t.asn},{prefix},{int(prefix.split('/')[1])},sim")
        return "\n".join(lines) + "\n"

    def reference_json(self) -> dict[str, Any]:
        """The tenants and prefixes in scenario-file form."""
        return {
            "tenants": [
                {
                    "id": t.id,
                    "asns": [t.asn],
                    "neighbors": {str(u): "upstream" for u in t.upstreams},
                }
                for t in self.tenants
            ],
            "prefixes": [
                {
                    "tenant_id": t.id,
                    "prefix": p,
                    "origin_asns": [t.asn],
                    "max_length": int(p.split("/")[1]),
                    "announced": True,
                }
                for t in self.tenants
                for p in t.prefixes
            ]
            + [
                {
                    "tenant_id": t.id,
                    "prefix": t.unannounced,
                    "origin_asns": [],
                    "max_length": int(t.unannounced.split("/")[1]),
                    "announced": False,
                }
                for t in self.tenants
            ],
        }


def _asns(rng: random.Random, count: int, used: set[int]) -> list[int]:
    out: list[int] = []
    while len(out) < count:
        # public ranges only: 1000-23455, 23457-64495 and 132000-399999
        asn = rng.choice(
            (rng.randint(1000, 23455), rng.randint(23457, 64495), rng.randint(132_000, 399_999))
        )
        if asn not in used:
            used.add(asn)
            out.append(asn)
    return out


def _prefix(index: int) -> str:
    """The index-th /24 of 11.0.0.0 - 99.255.255.0 (public, non-bogon space)."""
    first = 11 + index // 65536
    if first in (100, 127):
        raise ValueError("prefix space exhausted")
    return f"{first}.{(index // 256) % 256}.{index % 256}.0/24"


def build(
    seed: int = 1,
    peers: int = 80_000,
    prefixes: int = 100_000,
    tenants: int = 3,
    collectors: int = 40,
    tenant_prefixes: int = 60,
) -> World:
    rng = random.Random(seed)
    used: set[int] = set()
    tier1 = _asns(rng, TIER1, used)
    tier2 = _asns(rng, TIER2, used)
    stubs = _asns(rng, STUBS, used)
    providers: dict[int, tuple[int, ...]] = {}
    rels = [f"{a}|{b}|0" for i, a in enumerate(tier1) for b in tier1[i + 1 :]]
    for asn in tier2:
        providers[asn] = tuple(rng.sample(tier1, 2))
    for asn in stubs:
        providers[asn] = tuple(rng.sample(tier2, rng.choice((1, 2))))
    for child, ups in providers.items():
        rels.extend(f"{up}|{child}|-1" for up in ups)

    # Tenants: a stub of their own with two upstreams, ten prefixes, one unannounced.
    tenant_list = []
    tenant_asns = _asns(rng, tenants, used)
    block = tenant_prefixes + 1
    for i, asn in enumerate(tenant_asns):
        ups = (tier2[2 * i], tier2[2 * i + 1])
        providers[asn] = ups
        rels.extend(f"{up}|{asn}|-1" for up in ups)
        base = prefixes + i * block
        tenant_list.append(
            SimTenant(
                i + 1,
                f"sim-tenant-{i + 1}",
                asn,
                ups,
                [_prefix(base + k) for k in range(tenant_prefixes)],
                _prefix(base + tenant_prefixes),
            )
        )
    prefix_list = [_prefix(i) for i in range(prefixes)]
    origin_list = [rng.choice(stubs) for _ in range(prefixes)]
    roas = {i: 24 for i in range(prefixes) if rng.random() < 0.3}
    peer_asn_pool = tier1 + tier2 + rng.sample(stubs, 2000)
    peer_list = [
        Peer(
            f"rrc{i % collectors:02d}",
            f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            rng.choice(peer_asn_pool),
        )
        for i in range(peers)
    ]
    return World(
        seed,
        tier1,
        tier2,
        stubs,
        providers,
        prefix_list,
        origin_list,
        roas,
        peer_list,
        tenant_list,
        rels,
    )
