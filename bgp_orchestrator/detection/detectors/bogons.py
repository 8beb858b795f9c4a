"""Bogon prefixes (special-purpose registries) and bogon ASNs anywhere in the path."""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.bgp.update import flat_asns, path_text
from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.scopes import Scopes, tenant_scopes
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState
from bgp_orchestrator.reference.bogons import bogon_asn, bogon_prefix

# First octets that hold an IPv4 bogon block: a fast path for everything else.
_V4_BOGON_OCTETS = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203, *range(224, 256)})


def _scopes(p: Prepared, ref: Reference) -> Scopes:
    """A tenant's prefix (high), a route its router accepted (medium), else global."""
    return tenant_scopes(
        p,
        ref,
        own_prefix=Severity.HIGH,
        involved=Severity.MEDIUM,
        involved_asn=p.u.peer_asn,
        global_scope=ref.settings.global_observations,
    )


def bogon_prefix_announced(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE:
            continue
        net = p.net
        assert net is not None
        if net.afi == 4 and net.length >= 8 and (net.value >> 24) not in _V4_BOGON_OCTETS:
            continue
        block = bogon_prefix(net)
        if block is None:
            continue
        for tenant_id, severity in _scopes(p, ref).items():
            yield Conflict(
                type=ConflictType.BOGON_PREFIX,
                severity=severity,
                tenant_id=tenant_id,
                prefix=u.prefix,
                origin_asn=p.origins[0] if len(p.origins) == 1 else None,
                as_path=path_text(u.as_path),
                peer=u.peer_key,
                seen_at=u.timestamp,
                detail_key=block,
                details={"bogon_block": block},
            )


def bogon_asn_in_path(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or not u.as_path:
            continue
        for asn in flat_asns(u.as_path):
            if 0 < asn < 23456 or 23456 < asn < 64496 or 131071 < asn < 4200000000:
                continue
            reason = bogon_asn(asn)
            if reason is None:
                continue
            for tenant_id, severity in _scopes(p, ref).items():
                yield Conflict(
                    type=ConflictType.BOGON_ASN,
                    severity=severity,
                    tenant_id=tenant_id,
                    prefix=u.prefix,
                    origin_asn=p.origins[0] if len(p.origins) == 1 else None,
                    as_path=path_text(u.as_path),
                    peer=u.peer_key,
                    seen_at=u.timestamp,
                    detail_key=str(asn),
                    details={"bogon_asn": asn, "reason": reason},
                )
            break  # one observation per route is enough
