"""Visibility loss: a monitored prefix withdrawn by a large share of the peers that carried it."""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.bgp.update import Kind
from bgp_orchestrator.detection.batch import ANNOUNCE, WITHDRAW, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.reference import Monitored, Reference
from bgp_orchestrator.detection.state import DetectorState, Visibility


def _conflict(m: Monitored, vis: Visibility, peer: str, ts: float, resolved: bool) -> Conflict:
    carrying = len(vis.carrying)
    return Conflict(
        type=ConflictType.VISIBILITY_LOSS,
        severity=Severity.HIGH,
        tenant_id=m.tenant_id,
        prefix=m.prefix,
        origin_asn=None,
        as_path="",
        peer=peer,
        seen_at=ts,
        monitored_prefix=m.prefix,
        details={
            "peers_carrying": carrying,
            "peers_at_peak": vis.peak,
            "withdrawn_share": round(1 - carrying / vis.peak, 3) if vis.peak else 0.0,
        },
        resolved=resolved,
    )


def _check(
    m: Monitored, vis: Visibility, ref: Reference, peer: str, ts: float
) -> Iterator[Conflict]:
    settings = ref.settings
    if vis.peak < settings.visibility_min_peers:
        return
    lost = 1 - len(vis.carrying) / vis.peak
    if lost >= settings.visibility_share and not vis.alerted:
        vis.alerted = True
        yield _conflict(m, vis, peer, ts, resolved=False)
    elif lost < settings.visibility_share and vis.alerted:
        vis.alerted = False
        yield _conflict(m, vis, peer, ts, resolved=True)


def visibility_loss(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    table = state.visibility
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
            vis = table.get(u.prefix)
            if vis is None:
                vis = table[u.prefix] = Visibility()
            key = u.peer_key
            if kind == ANNOUNCE:
                vis.carrying.add(key)
                vis.peak = max(vis.peak, len(vis.carrying))
            else:
                vis.carrying.discard(key)
            yield from _check(m, vis, ref, key, u.timestamp)
        elif kind == Kind.PEER_DOWN:
            key = u.peer_key
            for prefix, vis in table.items():
                if key in vis.carrying:
                    vis.carrying.discard(key)
                    m = by_prefix.get(prefix)
                    if m is not None:
                        yield from _check(m, vis, ref, key, u.timestamp)
