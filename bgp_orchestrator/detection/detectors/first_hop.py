"""Illegal first hop: a monitored prefix reached through a neighbour not configured.

The neighbours are the prefix's own (``upstream_asns`` / ``peer_asns`` of the most
specific monitored prefix covering the route that names any, as ARTEMIS rules
do), else the tenant's neighbour list.
"""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.reference import Monitored, Reference
from bgp_orchestrator.detection.state import DetectorState


def neighbour_rule(p: Prepared, owner: Monitored) -> Monitored | None:
    """The most specific of the owner's monitored prefixes covering the route that names
    its own neighbours (a customer's prefix, or a rule for a block of them), if any."""
    if owner.carriers is not None:
        return owner
    for m in reversed(p.covering):  # most specific last
        if m.tenant_id == owner.tenant_id and m.carriers is not None:
            return m
    return None


def first_hop(
    p: Prepared, m: Monitored, rule: Monitored | None, tenant_asns: frozenset[int]
) -> int | None:
    """The first AS after the origin on the route's path (None: none, or an AS_SET).

    A prefix's own rule names its first hops (the tenant among them, for a customer's
    prefix); the tenant's list is about its own network, so without a rule the
    tenant's ASNs are skipped as part of the origin."""
    own = m.origins if rule is not None else tenant_asns | m.origins
    for element in reversed(p.path):
        if isinstance(element, tuple):
            return None  # an AS_SET next to the origin: no single first hop
        if element not in own:
            return element
    return None


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
            rule = neighbour_rule(p, m)
            carriers = rule.carriers if rule is not None else tenant.carriers
            if not carriers:
                continue  # no neighbours configured: nothing to compare with
            first = first_hop(p, m, rule, tenant.asns)
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
                    "neighbours_of": rule.prefix if rule is not None else "tenant",
                    "reason": f"AS{first} is not a configured upstream or peer of "
                    + (f"{rule.prefix}" if rule is not None else "the origin"),
                },
            )
