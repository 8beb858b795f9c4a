"""ASPA path verification of every announcement of a monitored prefix.

Which procedure applies follows from where the route was received: over a
tenant's own BGP session (ExaBGP) the neighbour's relationship in the
inventory decides (from a customer or a peer: upstream; from an upstream:
downstream); on a route collector's feed (RIS Live, MRT, BMP) the collector's
peer acts as the collector's provider, so the downstream procedure applies.
Only ``invalid`` raises a conflict; ``unknown`` (an AS on the way published no
ASPA) is the normal state of most of today's paths.
"""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState
from bgp_orchestrator.reference.aspa import DOWNSTREAM, UPSTREAM, AspaState, Verdict

#: Sources that are the tenant's own BGP sessions (their neighbour is in the inventory).
SESSION_SOURCES = frozenset({"exabgp"})


def procedure_for(p: Prepared, ref: Reference, tenant_id: int | None) -> str:
    """The verification procedure for this route as ``tenant_id`` received it."""
    if tenant_id is not None and p.u.source in SESSION_SOURCES:
        tenant = ref.tenants.get(tenant_id)
        relationship = tenant.neighbors.get(p.u.peer_asn) if tenant else None
        if relationship in ("customer", "peer"):
            return UPSTREAM
    return DOWNSTREAM


def aspa_invalid(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    aspas = ref.aspas
    if aspas is None or not len(aspas):
        return
    for p in batch:
        if not p.covering or p.u.kind != ANNOUNCE or not p.path:
            continue
        verdicts: dict[str, Verdict] = {}  # one verification per procedure, not per tenant
        for m in p.owners().values():
            procedure = procedure_for(p, ref, m.tenant_id)
            verdict = verdicts.get(procedure)
            if verdict is None:
                verdict = verdicts[procedure] = aspas.verify(p.path, procedure)
            if verdict.state is not AspaState.INVALID:
                continue
            first = verdict.failed[0] if verdict.failed else None
            yield p.observe(
                type=ConflictType.ASPA_INVALID,
                severity=Severity.HIGH,
                tenant_id=m.tenant_id,
                detail_key=f"{first[0]}>{first[1]}" if first else "as-set",
                monitored_prefix=m.prefix,
                details={
                    "procedure": procedure,
                    "failed_hops": [
                        {"customer": c, "not_provider": pr} for c, pr in verdict.failed
                    ],
                    "between_ramps": list(verdict.between),
                    "reason": verdict.reason,
                },
            )
