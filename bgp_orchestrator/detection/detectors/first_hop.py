"""Illegal first hop: a monitored prefix reached through a neighbour not configured."""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState


def illegal_first_hop(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    for p in batch:
        if not p.covering or p.u.kind != ANNOUNCE or len(p.path) < 2:
            continue
        for m in p.owners().values():
            if not m.announced or m.origins.isdisjoint(p.origins):
                continue  # other detectors judge unauthorised origins
            tenant = ref.tenants.get(m.tenant_id)
            if tenant is None:
                continue
            carriers = tenant.carriers
            if not carriers:
                continue  # no neighbours configured: nothing to compare with
            own = tenant.asns | m.origins
            first = None
            for element in reversed(p.path):
                if isinstance(element, tuple):
                    break  # an AS_SET next to the origin: no single first hop
                if element not in own:
                    first = element
                    break
            if first is None or first in carriers:
                continue
            yield p.observe(
                type=ConflictType.ILLEGAL_FIRST_HOP,
                severity=Severity.HIGH,
                tenant_id=m.tenant_id,
                detail_key=str(first),
                monitored_prefix=m.prefix,
                details={
                    "first_hop": first,
                    "configured_neighbours": sorted(carriers),
                    "reason": f"AS{first} is not a configured upstream or peer of the origin",
                },
            )
