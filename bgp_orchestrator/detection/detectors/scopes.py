"""Whom an observation concerns: tenants with a severity each, or the global scope.

One rule for the detectors that judge any route (RPKI, leaks, bogons, MOAS):
a tenant whose monitored prefix covers the route sees it at one severity, a
tenant whose ASN is involved (the router that accepted the route, the AS that
leaked it) at another, and a route that concerns no tenant is a global
observation at INFO when the detector keeps those.
"""

from __future__ import annotations

from bgp_orchestrator.detection.batch import Prepared
from bgp_orchestrator.detection.conflict import SEVERITY_RANK, Severity
from bgp_orchestrator.detection.reference import Reference

Scopes = dict[int | None, Severity]


def tenant_scopes(
    p: Prepared,
    ref: Reference,
    *,
    own_prefix: Severity,
    global_scope: bool,
    involved: Severity | None = None,
    involved_asn: int | None = None,
) -> Scopes:
    """Tenant id (None: global) -> severity of this observation for it.

    ``own_prefix`` for each tenant with a monitored prefix covering the route;
    ``involved`` for each tenant owning ``involved_asn``; a tenant that is both
    gets the higher of the two. When no tenant is concerned: ``{None: INFO}``
    if ``global_scope``, else nothing (the observation is dropped).
    """
    scopes: Scopes = {}
    for m in p.covering:
        scopes[m.tenant_id] = own_prefix
    if involved is not None and involved_asn is not None:
        rank = SEVERITY_RANK[involved]
        for tenant_id in ref.asn_tenants.get(involved_asn, ()):
            current = scopes.get(tenant_id)
            if current is None or rank > SEVERITY_RANK[current]:
                scopes[tenant_id] = involved
    if not scopes and global_scope:
        scopes[None] = Severity.INFO
    return scopes
