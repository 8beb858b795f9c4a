"""Per-upstream visibility: a monitored prefix no longer seen through one of its upstreams.

Global visibility loss asks whether the world still sees a prefix; an operator
also wants to know when one of its upstreams stopped carrying it (a session down
at the upstream, a filter changed) while the others still do. For each monitored
prefix the detector remembers through which configured upstream (the first AS
after the origin, as the first-hop detector reads it) each peer carries it. When
the last peer that carried it through an upstream withdraws it, moves to another
path or goes down, the upstream is reported lost (``detail_key``: the upstream's
ASN); when a peer carries it that way again, the conflict is resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bgp_orchestrator.bgp.update import Kind
from bgp_orchestrator.detection.batch import ANNOUNCE, WITHDRAW, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.first_hop import first_hop, neighbour_rule
from bgp_orchestrator.detection.reference import Monitored, Reference
from bgp_orchestrator.detection.state import DetectorState, UpstreamVisibility


def _conflict(
    m: Monitored, upstream: int, vis: UpstreamVisibility, peer: str, ts: float, resolved: bool
) -> Conflict:
    others = sorted(a for a, n in vis.counts.items() if n and a != upstream)
    return Conflict(
        type=ConflictType.UPSTREAM_VISIBILITY_LOSS,
        severity=Severity.MEDIUM if others else Severity.HIGH,
        tenant_id=m.tenant_id,
        prefix=m.prefix,
        origin_asn=None,
        as_path="",
        peer=peer,
        seen_at=ts,
        detail_key=str(upstream),
        monitored_prefix=m.prefix,
        details={
            "upstream": upstream,
            "peers_through_upstream": vis.counts.get(upstream, 0),
            "still_seen_through": others,
            "explanation": (
                f"a peer carries {m.prefix} through AS{upstream} again"
                if resolved
                else f"no peer carries {m.prefix} through its upstream AS{upstream} any more"
                + (f"; still seen through AS{', AS'.join(map(str, others))}" if others else "")
            ),
        },
        resolved=resolved,
    )


def _move(vis: UpstreamVisibility, peer: str, upstream: int | None) -> int | None:
    """Record that ``peer`` now carries the prefix through ``upstream`` (None: not through
    any configured one); the upstream it used before, if that changed."""
    before = vis.peers.get(peer)
    if before == upstream:
        return None
    if before is not None:
        vis.counts[before] -= 1
    if upstream is None:
        vis.peers.pop(peer, None)
    else:
        vis.peers[peer] = upstream
        vis.counts[upstream] = vis.counts.get(upstream, 0) + 1
        vis.seen.add(upstream)
    return before


def _check(
    m: Monitored, vis: UpstreamVisibility, upstreams: Iterable[int], peer: str, ts: float
) -> Iterator[Conflict]:
    for upstream in upstreams:
        carried = vis.counts.get(upstream, 0) > 0
        if not carried and upstream in vis.seen and upstream not in vis.alerted:
            vis.alerted.add(upstream)
            yield _conflict(m, upstream, vis, peer, ts, resolved=False)
        elif carried and upstream in vis.alerted:
            vis.alerted.discard(upstream)
            yield _conflict(m, upstream, vis, peer, ts, resolved=True)


def upstream_visibility_loss(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    table = state.upstream_visibility
    by_prefix = ref.monitored.by_prefix
    for p in batch:
        u = p.u
        kind = u.kind
        if kind in (ANNOUNCE, WITHDRAW):
            if not p.covering:
                continue
            m = by_prefix.get(u.prefix)
            if m is None or not m.announced:
                continue
            tenant = ref.tenants.get(m.tenant_id)
            if tenant is None:
                continue
            rule = neighbour_rule(p, m)
            upstreams = rule.upstreams if rule is not None else tenant.upstreams
            if not upstreams:
                continue
            vis = table.get(u.prefix)
            if vis is None:
                vis = table[u.prefix] = UpstreamVisibility()
            through = None
            if kind == ANNOUNCE and not m.origins.isdisjoint(p.origins):
                hop = first_hop(p, m, rule, tenant.asns)
                through = hop if hop in upstreams else None
            before = _move(vis, u.peer_key, through)
            changed = [a for a in (before, through) if a is not None]
            yield from _check(m, vis, changed, u.peer_key, u.timestamp)
        elif kind == Kind.PEER_DOWN:
            key = u.peer_key
            for prefix, vis in table.items():
                if key in vis.peers:
                    before = _move(vis, key, None)
                    m = by_prefix.get(prefix)
                    if m is not None and before is not None:
                        yield from _check(m, vis, [before], key, u.timestamp)
