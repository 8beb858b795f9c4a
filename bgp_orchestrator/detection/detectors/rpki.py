"""RPKI route origin validation (RFC 6811) of every announcement."""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.scopes import tenant_scopes
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState
from bgp_orchestrator.reference.vrps import RovState

VALID = RovState.VALID.value
NOT_FOUND = RovState.NOT_FOUND.value


def rpki_invalid(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    """Invalid routes: on a tenant's prefix (high), accepted by a tenant's router (medium),
    anywhere else an informational global observation."""
    vrps = ref.vrps
    if vrps is None or not len(vrps):
        return
    cache = state.rov_cache_for(ref.version)
    global_obs = ref.settings.global_observations
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or not p.origins:
            continue
        # An AS_SET origin cannot match a VRP (RFC 6811 treats it as NONE).
        origin = p.origins[0] if len(p.origins) == 1 else None
        key = (u.prefix, origin)
        result = cache.get(key)
        if result is None:
            result = vrps.validate(p.net, origin).value  # type: ignore[arg-type]
            cache[key] = result
        if result in (VALID, NOT_FOUND):
            continue
        scopes = tenant_scopes(
            p,
            ref,
            own_prefix=Severity.HIGH,
            involved=Severity.MEDIUM,
            involved_asn=u.peer_asn,
            global_scope=global_obs,
        )
        if not scopes:
            continue
        covering = [
            {"asn": asn, "max_length": max_length}
            for asn, max_length in vrps.covering(p.net)  # type: ignore[arg-type]
        ][:20]
        for tenant_id, severity in scopes.items():
            yield p.observe(
                type=ConflictType.RPKI_INVALID,
                severity=severity,
                tenant_id=tenant_id,
                detail_key=result,
                details={
                    "rov_state": result,
                    "covering_vrps": covering,
                    "accepted_by_tenant_router": tenant_id is not None
                    and severity == Severity.MEDIUM,
                },
            )
