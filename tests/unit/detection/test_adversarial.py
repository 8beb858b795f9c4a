"""The whole pipeline fed 80,000 peers and garbage: bounded time per update, bounded state.

Garbage is what a broken or hostile feed sends: private and reserved ASNs,
paths thousands of ASNs long (prepended, or with a tenant's ASN all over
them), AS_SETs of a thousand members, session resets of every peer.
"""

import random

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection import scenario
from bgp_orchestrator.detection.batch import prepare
from bgp_orchestrator.detection.detectors.moas import MAX_ORIGINS
from bgp_orchestrator.detection.pipeline import Pipeline
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.reference.asrel import parse_lines
from bgp_orchestrator.reference.vrps import VrpIndex, parse_csv
from bgp_orchestrator.simulation.world import Peer, World, build
from tests.unit.detection.timing import cpu_seconds


def _world() -> tuple[World, Reference]:
    world = build(seed=7, peers=80_000, prefixes=5_000, tenant_prefixes=20)
    ref = scenario.reference_from_json(world.reference_json(), "adversarial")
    ref.vrps = VrpIndex(parse_csv(world.vrp_csv()))
    ref.relationships = parse_lines(world.relationships)
    return world, ref


def _announce(peer: Peer, prefix: str, path: tuple[object, ...], ts: float) -> Update:
    return Update(
        Kind.ANNOUNCE,
        ts,
        peer.address,
        peer.asn,
        prefix,
        path,  # type: ignore[arg-type]
        collector=peer.collector,
    )


def _garbage(world: World, rng: random.Random) -> list[Update]:
    tenant = world.tenants[0]
    as_sets = [tuple(sorted(rng.sample(range(1, 400_000), 1000))) for _ in range(16)]
    out: list[Update] = []
    for i, peer in enumerate(world.peers):
        prefix = world.prefixes[i % len(world.prefixes)]
        kind = i % 16  # one peer in sixteen sends each kind of garbage
        if kind == 0:  # a private ASN in the middle, the prefix's own origin
            path: tuple[object, ...] = (peer.asn, 64512 + i % 1000, world.origins[i % 5000])
        elif kind == 1:  # prepended a thousand times
            path = (peer.asn, *([world.origins[i % 5000]] * 1000))
        elif kind == 2:  # an AS_SET of a thousand members as the origin, on a tenant prefix
            path = (peer.asn, 174, as_sets[i % 16])
            prefix = tenant.prefixes[i % len(tenant.prefixes)]
        elif kind == 3:  # a different origin for a tenant prefix from every peer (MOAS storm)
            path = (peer.asn, 200_000 + i)
            prefix = tenant.prefixes[0]
        elif kind == 4:  # reserved and 32-bit private ASNs, a bogon prefix
            path = (peer.asn, 65535, 4_200_000_000 + i)
            prefix = f"10.{i % 256}.{(i >> 8) % 256}.0/24"
        else:  # ordinary background routing
            path = world.path(peer.asn, world.origins[i % 5000], rng)
        out.append(_announce(peer, prefix, path, 1000.0 + i * 0.001))
    # a few very long paths with a tenant's ASN all over them (16,000 ASNs)
    long_path = tuple(x for _ in range(8000) for x in (tenant.asn, 3356))
    for peer in world.peers[:20]:
        out.append(_announce(peer, world.prefixes[0], (peer.asn, *long_path, 13335), 1100.0))
    return out


def test_80000_peers_of_garbage_and_a_reset_of_every_session() -> None:
    world, ref = _world()
    rng = random.Random(11)
    updates = _garbage(world, rng)
    resets = [
        Update(Kind.PEER_DOWN, 1200.0, p.address, p.asn, collector=p.collector) for p in world.peers
    ]
    pipeline = Pipeline(ref)
    with cpu_seconds() as spent:
        result = pipeline.process(updates)
        down = pipeline.process(resets)
    elapsed = spent[0]
    assert pipeline.errors == {}
    assert result.invalid == [] and down.invalid == []
    # ~2.5 s on the idle 2-core development machine, most of it formatting the huge
    # paths into the conflicts they raise; the bound leaves room for a loaded machine
    # and is still far below what one quadratic step over 80,000 peers would cost
    assert elapsed < 30.0, f"{elapsed:.1f}s for {len(updates) + len(resets)} updates"
    state = pipeline.state
    assert max(len(seen) for seen in state.origins.values()) <= MAX_ORIGINS
    assert len(state.visibility) <= len(ref.monitored)
    assert all(not vis.carrying for vis in state.visibility.values())  # every session reset
    # the storm on the tenant's prefix is one MOAS conflict for that tenant
    tenant_prefix = world.tenants[0].prefixes[0]
    moas_keys = {
        c.key for c in result.conflicts if c.type.value == "moas" and c.prefix == tenant_prefix
    }
    assert moas_keys == {f"{world.tenants[0].id}|moas|{tenant_prefix}||"}


def test_a_tenant_asn_all_over_a_long_path_costs_linear_time() -> None:
    ref = scenario.reference_from_json({"tenants": [{"id": 1, "asns": [64500]}]})
    path = tuple(x for _ in range(8000) for x in (64500, 3356))
    updates = [
        Update(Kind.ANNOUNCE, 1.0, f"10.0.0.{i}", 3356, "8.8.8.0/24", (*path, 15169))
        for i in range(20)
    ]
    with cpu_seconds() as spent:
        batch = prepare(updates, ref, [])
    elapsed = spent[0]
    assert elapsed < 0.3, f"{elapsed:.2f}s for 20 paths of 16,000 ASNs"  # was ~0.7 s
    assert all(p.transit_tenants == (1,) for p in batch)


def test_session_resets_cost_at_most_the_monitored_prefixes_each() -> None:
    """PEER_DOWN walks the visibility table, which holds only monitored prefixes: an
    event costs O(monitored prefixes) whatever the feed sends."""
    prefixes = [f"45.{i >> 8}.{i & 255}.0/24" for i in range(1000)]
    ref = scenario.reference_from_json(
        {
            "tenants": [{"id": 1, "asns": [64500]}],
            "prefixes": [{"tenant_id": 1, "prefix": p, "origin_asns": [64500]} for p in prefixes],
        }
    )
    pipeline = Pipeline(ref)
    peers = [f"10.0.0.{i}" for i in range(20)]
    pipeline.process(
        Update(Kind.ANNOUNCE, 1.0, peer, 3356, p, (3356, 64500), collector="c")
        for peer in peers
        for p in prefixes
    )
    strangers = [
        Update(Kind.PEER_DOWN, 2.0, f"10.9.{i >> 8}.{i & 255}", 65000, collector="c")
        for i in range(5_000)
    ]
    with cpu_seconds() as spent:
        pipeline.process(strangers)
    elapsed = spent[0]
    assert elapsed < 5.0, f"{elapsed:.2f}s for 5,000 resets over 1,000 prefixes"  # ~0.3 s
    result = pipeline.process(
        Update(Kind.PEER_DOWN, 3.0, peer, 3356, collector="c") for peer in peers
    )
    assert pipeline.errors == {}
    assert len(pipeline.state.visibility) == 1000
    lost = {c.prefix for c in result.conflicts if not c.resolved}
    assert lost == set(prefixes)  # each prefix lost its peers: one alert each
