"""The simulated update stream: background routing plus labelled incidents.

Background (never raises a conflict in a consistent world): re-announcements
and path changes of ~100,000 prefixes seen by 80,000 peers, withdrawals,
session flaps followed by a table burst, and the tenants' prefixes carried by
ten peers each. Incidents (each on a prefix of its own, each with the exact
conflicts it must raise): exact and sub-prefix hijacks, squatting, a route
leak, an illegal first hop, NO_EXPORT violation, RPKI-invalid, bogon prefix,
bogon ASN, visibility loss and recovery.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from bgp_orchestrator.bgp.update import NO_EXPORT, Kind, Update
from bgp_orchestrator.detection.scenario import Expected
from bgp_orchestrator.simulation.world import Peer, SimTenant, World

CARRIERS = 10
INCIDENT_KINDS = (
    "exact-hijack",
    "subprefix-hijack",
    "squatting",
    "route-leak",
    "illegal-first-hop",
    "no-export",
    "rpki-invalid",
    "bogon-prefix",
    "bogon-asn",
    "visibility-loss",
)


@dataclass
class Incident:
    kind: str
    prefix: str
    at_update: int
    updates: list[Update]
    expected: list[Expected]


@dataclass
class Simulation:
    world: World
    total: int
    rate: float = 20_000.0
    incidents: int = 50
    seed: int = 7
    start_time: float = 1_700_000_000.0
    flap_every: int = 20_000
    burst: int = 200
    #: prefixes incidents must not use (e.g. those with conflicts from an earlier run on
    #: the same stack, whose stored rows would hide a conflict this run failed to raise)
    avoid: frozenset[str] = frozenset()
    planned: list[Incident] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._tenant_prefixes = [(t, p) for t in self.world.tenants for p in t.prefixes]
        self._used: set[str] = set(self.avoid)
        self._carriers = self.world.peers[:CARRIERS]
        self._roa_prefixes = sorted(self.world.roas)
        self._counter = 0

    # --- helpers ------------------------------------------------------------------

    def _ts(self, index: int) -> float:
        return self.start_time + index / self.rate

    def _peer(self) -> Peer:
        return self.world.peers[self.rng.randrange(CARRIERS, len(self.world.peers))]

    def _announce(
        self,
        peer: Peer,
        prefix: str,
        path: tuple[int, ...],
        ts: float,
        communities: tuple[int, ...] = (),
    ) -> Update:
        return Update(
            Kind.ANNOUNCE,
            ts,
            peer.address,
            peer.asn,
            prefix,
            path,
            communities,
            peer.address,
            "simulator",
            peer.collector,
        )

    def _withdraw(self, peer: Peer, prefix: str, ts: float) -> Update:
        return Update(
            Kind.WITHDRAW,
            ts,
            peer.address,
            peer.asn,
            prefix,
            (),
            (),
            "",
            "simulator",
            peer.collector,
        )

    def _fresh_tenant_prefix(self) -> tuple[SimTenant, str]:
        free = [(t, p) for t, p in self._tenant_prefixes if p not in self._used]
        if not free:
            raise ValueError("more incidents than tenant prefixes: raise tenant_prefixes")
        tenant, prefix = self.rng.choice(free)
        self._used.add(prefix)
        return tenant, prefix

    def _fresh_roa_prefix(self) -> int:
        while True:
            index = self.rng.choice(self._roa_prefixes)
            if self.world.prefixes[index] not in self._used:
                self._used.add(self.world.prefixes[index])
                return index

    def _hijacker(self, *avoid: int) -> int:
        while True:
            asn = self.rng.choice(self.world.stubs)
            if asn not in avoid:
                return asn

    def _loop_free(self, path: tuple[int, ...]) -> bool:
        return len(set(path)) == len(path)

    # --- the stream ---------------------------------------------------------------

    def warmup(self) -> list[Update]:
        """Each tenant prefix announced by the carrier peers through its upstreams."""
        out = []
        ts = self._ts(0)
        for tenant, prefix in self._tenant_prefixes:
            for peer in self._carriers:
                out.append(
                    self._announce(
                        peer, prefix, self.world.tenant_path(tenant, peer.asn, self.rng), ts
                    )
                )
        return out

    def plan(self) -> list[Incident]:
        if self.planned:
            return self.planned
        step = max(1, self.total // (self.incidents + 1))
        for n in range(self.incidents):
            kind = INCIDENT_KINDS[n % len(INCIDENT_KINDS)]
            at = (n + 1) * step
            self.planned.append(getattr(self, "_" + kind.replace("-", "_"))(at))
        return self.planned

    def updates(self, chunk: int = 1000) -> Iterator[list[Update]]:
        """Background and incidents, ``total`` background updates in chunks."""
        incidents = {i.at_update: i for i in self.plan()}
        world, rng = self.world, self.rng
        n_prefixes = len(world.prefixes)
        out: list[Update] = []
        for index in range(self.total):
            ts = self._ts(index)
            incident = incidents.get(index)
            if incident is not None:
                out.extend(incident.updates)
            if index and index % self.flap_every == 0:
                peer = self._peer()
                out.append(
                    Update(
                        Kind.PEER_DOWN,
                        ts,
                        peer.address,
                        peer.asn,
                        source="simulator",
                        collector=peer.collector,
                    )
                )
                out.append(
                    Update(
                        Kind.PEER_UP,
                        ts,
                        peer.address,
                        peer.asn,
                        source="simulator",
                        collector=peer.collector,
                    )
                )
                for _ in range(self.burst):
                    p = rng.randrange(n_prefixes)
                    out.append(
                        self._announce(
                            peer, world.prefixes[p], world.path(peer.asn, world.origins[p], rng), ts
                        )
                    )
            roll = rng.random()
            if roll < 0.05:
                tenant, prefix = rng.choice(self._tenant_prefixes)
                peer = rng.choice(self._carriers)
                out.append(
                    self._announce(peer, prefix, world.tenant_path(tenant, peer.asn, rng), ts)
                )
            else:
                peer = self._peer()
                p = rng.randrange(n_prefixes)
                if roll < 0.75:
                    out.append(
                        self._announce(
                            peer, world.prefixes[p], world.path(peer.asn, world.origins[p], rng), ts
                        )
                    )
                else:
                    out.append(self._withdraw(peer, world.prefixes[p], ts))
            if len(out) >= chunk:
                yield out
                out = []
        if out:
            yield out

    def expected(self) -> list[Expected]:
        return [e for incident in self.plan() for e in incident.expected]

    # --- incidents ------------------------------------------------------------------

    def _exact_hijack(self, at: int) -> Incident:
        tenant, prefix = self._fresh_tenant_prefix()
        hijacker = self._hijacker(tenant.asn)
        peer = self._peer()
        ts = self._ts(at)
        update = self._announce(peer, prefix, self.world.path(peer.asn, hijacker, self.rng), ts)
        return Incident(
            "exact-hijack",
            prefix,
            at,
            [update],
            [
                Expected("exact-prefix-hijack", tenant.id, prefix, hijacker, "", "critical"),
                Expected("moas", tenant.id, prefix, None, "", "low"),  # one per prefix
                Expected("rpki-invalid", tenant.id, prefix, hijacker, "invalid-origin", "high"),
            ],
        )

    def _subprefix_hijack(self, at: int) -> Incident:
        tenant, prefix = self._fresh_tenant_prefix()
        more_specific = prefix.replace(".0/24", ".128/25")
        hijacker = self._hijacker(tenant.asn)
        peer = self._peer()
        update = self._announce(
            peer, more_specific, self.world.path(peer.asn, hijacker, self.rng), self._ts(at)
        )
        return Incident(
            "subprefix-hijack",
            more_specific,
            at,
            [update],
            [
                Expected(
                    "sub-prefix-hijack", tenant.id, more_specific, hijacker, prefix, "critical"
                ),
                Expected(
                    "rpki-invalid", tenant.id, more_specific, hijacker, "invalid-origin", "high"
                ),
            ],
        )

    def _squatting(self, at: int) -> Incident:
        tenant = self.rng.choice(self.world.tenants)
        prefix = tenant.unannounced
        if prefix in self._used:
            # One squatting incident on the /24 itself, then each on a more-specific of it
            # not squatted yet (/27s, then /28s ...): the same prefix squatted again from
            # another origin would also raise a MOAS conflict, which no incident labels.
            base = prefix.rsplit(".", 1)[0]
            free = (
                candidate
                for length in range(27, 33)
                for i in range(1, 2 ** (length - 24) + 1)
                if (candidate := f"{base}.{i * 2 ** (32 - length) % 256}/{length}")
                not in self._used
            )
            prefix = next(free, "")
            if not prefix:
                raise ValueError("more squatting incidents than more-specifics to squat")
        self._used.add(prefix)
        squatter = self._hijacker(tenant.asn)
        peer = self._peer()
        update = self._announce(
            peer, prefix, self.world.path(peer.asn, squatter, self.rng), self._ts(at)
        )
        return Incident(
            "squatting",
            prefix,
            at,
            [update],
            [
                Expected("squatting", tenant.id, prefix, squatter, tenant.unannounced, "critical"),
            ],
        )

    def _route_leak(self, at: int) -> Incident:
        world, rng = self.world, self.rng
        tenant, prefix = self._fresh_tenant_prefix()
        for _ in range(1000):
            leaker = rng.choice(world.stubs)
            ups = world.providers.get(leaker, ())
            if len(ups) < 2:
                continue
            learned_from, sent_to = rng.sample(ups, 2)
            peer = self._peer()
            upstream = rng.choice(tenant.upstreams)
            path = (
                *world.path(peer.asn, sent_to, rng),
                leaker,
                *world.path(learned_from, upstream, rng),
                tenant.asn,
            )
            if self._loop_free(path) and peer.asn not in (leaker, learned_from):
                update = self._announce(peer, prefix, path, self._ts(at))
                return Incident(
                    "route-leak",
                    prefix,
                    at,
                    [update],
                    [
                        # One path seen by one peer, over inferred relationships: by
                        # itself not enough evidence for an alert (no spread, no breadth;
                        # see detectors/leaks.py), so the detector stores it as an
                        # observation of its own.
                        Expected(
                            "route-leak",
                            tenant.id,
                            prefix,
                            tenant.asn,
                            f"{learned_from}>{leaker}>{sent_to}|observation",
                            "info",
                        ),
                    ],
                )
        raise RuntimeError("could not build a leak path")

    def _illegal_first_hop(self, at: int) -> Incident:
        world, rng = self.world, self.rng
        tenant, prefix = self._fresh_tenant_prefix()
        while True:
            via = rng.choice(world.tier2)
            if via not in tenant.upstreams:
                break
        peer = self._peer()
        path = (*world.path(peer.asn, via, rng), tenant.asn)
        update = self._announce(peer, prefix, path, self._ts(at))
        return Incident(
            "illegal-first-hop",
            prefix,
            at,
            [update],
            [
                Expected("illegal-first-hop", tenant.id, prefix, tenant.asn, str(via), "high"),
            ],
        )

    def _no_export(self, at: int) -> Incident:
        tenant, prefix = self._fresh_tenant_prefix()
        peer = self._peer()
        path = self.world.tenant_path(tenant, peer.asn, self.rng)
        update = self._announce(peer, prefix, path, self._ts(at), (NO_EXPORT,))
        return Incident(
            "no-export",
            prefix,
            at,
            [update],
            [
                Expected(
                    "no-export-violation", tenant.id, prefix, tenant.asn, str(path[-2]), "medium"
                ),
            ],
        )

    def _rpki_invalid(self, at: int) -> Incident:
        world = self.world
        index = self._fresh_roa_prefix()
        prefix, origin = world.prefixes[index], world.origins[index]
        bad = self._hijacker(origin)
        peer_a, peer_b = self._peer(), self._peer()
        ts = self._ts(at)
        ups = [
            self._announce(peer_a, prefix, world.path(peer_a.asn, origin, self.rng), ts),
            self._announce(peer_b, prefix, world.path(peer_b.asn, bad, self.rng), ts),
        ]
        return Incident(
            "rpki-invalid",
            prefix,
            at,
            ups,
            [
                Expected("rpki-invalid", None, prefix, bad, "invalid-origin", "info"),
                Expected("moas", None, prefix, None, "", "info"),
            ],
        )

    def _bogon_prefix(self, at: int) -> Incident:
        while True:
            self._counter += 1
            prefix = f"10.{self._counter % 256}.{(self._counter // 256) % 256}.0/24"
            if prefix not in self._used:
                break
        self._used.add(prefix)
        origin = self.rng.choice(self.world.stubs)
        peer = self._peer()
        update = self._announce(
            peer, prefix, self.world.path(peer.asn, origin, self.rng), self._ts(at)
        )
        return Incident(
            "bogon-prefix",
            prefix,
            at,
            [update],
            [
                Expected("bogon-prefix", None, prefix, origin, "10.0.0.0/8", "info"),
            ],
        )

    def _bogon_asn(self, at: int) -> Incident:
        world = self.world
        index = self.rng.randrange(len(world.prefixes))
        while world.prefixes[index] in self._used:
            index = self.rng.randrange(len(world.prefixes))
        prefix, origin = world.prefixes[index], world.origins[index]
        self._used.add(prefix)
        peer = self._peer()
        private = 64512 + self.rng.randrange(1000)
        path = (*world.path(peer.asn, origin, self.rng)[:-1], private, origin)
        update = self._announce(peer, prefix, path, self._ts(at))
        return Incident(
            "bogon-asn",
            prefix,
            at,
            [update],
            [
                Expected("bogon-asn", None, prefix, origin, str(private), "info"),
            ],
        )

    def _visibility_loss(self, at: int) -> Incident:
        tenant, prefix = self._fresh_tenant_prefix()
        ts = self._ts(at)
        gone = self._carriers[: CARRIERS // 2 + 1]
        ups = [self._withdraw(peer, prefix, ts) for peer in gone]
        ups += [
            self._announce(peer, prefix, self.world.tenant_path(tenant, peer.asn, self.rng), ts + 1)
            for peer in gone
        ]
        expected = [
            Expected("visibility-loss", tenant.id, prefix, None, "", "high"),
            Expected("visibility-loss", tenant.id, prefix, None, "", "high", resolved=True),
        ]
        # An upstream whose every carrier withdrew is lost too (the rest still see the
        # prefix through another upstream: medium), until they announce it again.
        upstream_of = self.world.tenant_upstream
        through = {upstream_of(tenant, peer.asn) for peer in self._carriers}
        kept = {upstream_of(tenant, peer.asn) for peer in self._carriers[len(gone) :]}
        for upstream in sorted(through - kept):
            for resolved in (False, True):
                expected.append(
                    Expected(
                        "upstream-visibility-loss",
                        tenant.id,
                        prefix,
                        None,
                        str(upstream),
                        "medium",
                        resolved=resolved,
                    )
                )
        return Incident("visibility-loss", prefix, at, ups, expected)
