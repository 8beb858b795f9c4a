"""Bogon prefixes (special-purpose registries) and bogon ASNs anywhere in the path."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from functools import lru_cache, partial

from bgp_orchestrator.bgp.update import AsPathElement
from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.scopes import Scopes, tenant_scopes
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState
from bgp_orchestrator.reference.bogons import (
    AsnSpans,
    bogon_asn,
    bogon_asn_spans,
    bogon_prefix,
    v4_bogon_first_octets,
    v6_clean_first_hextets,
)


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
    # Fast paths: an IPv4 /8-or-longer in a /8 that holds no bogon block, and an IPv6
    # /16-or-longer in a global-unicast /16 no bogon block touches, is no bogon.
    octets = v4_bogon_first_octets()
    hextets = v6_clean_first_hextets()
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE:
            continue
        net = p.net
        assert net is not None
        if net.afi == 4:
            if net.length >= 8 and (net.value >> 24) not in octets:
                continue
        elif net.length >= 16 and (net.value >> 112) in hextets:
            continue
        block = bogon_prefix(net)
        if block is None:
            continue
        for tenant_id, severity in _scopes(p, ref).items():
            yield p.observe(
                type=ConflictType.BOGON_PREFIX,
                severity=severity,
                tenant_id=tenant_id,
                detail_key=block,
                details={"bogon_block": block},
            )


def _first_bogon_asn(path: list[AsPathElement], spans: AsnSpans) -> int | None:
    """The first bogon ASN of a (prepending-free) path, AS_SET members included.

    One ``bisect`` over the merged bogon spans per ASN; walking the prepared path
    instead of the raw one makes a path prepended a thousand times cost one step.
    """
    firsts, lasts = spans
    for element in path:
        if isinstance(element, tuple):
            for asn in element:
                i = bisect_right(firsts, asn)
                if i and asn <= lasts[i - 1]:
                    return asn
            continue
        i = bisect_right(firsts, element)
        if i and element <= lasts[i - 1]:
            return element
    return None


@lru_cache(maxsize=1)
def _screen() -> tuple[Callable[[AsPathElement], int], frozenset[int]]:
    """A whole path checked in C: with the spans' edges interleaved
    (first0, last0 + 1, first1, ...), an ASN lies in a span exactly when
    ``bisect_right`` over the edges is odd."""
    firsts, lasts = bogon_asn_spans()
    edges = sorted([*firsts, *(last + 1 for last in lasts)])
    return partial(bisect_right, edges), frozenset(range(1, len(edges) + 1, 2))


def bogon_asn_in_path(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    spans = bogon_asn_spans()
    locate, inside = _screen()
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or not p.path:
            continue
        try:
            if inside.isdisjoint(map(locate, p.path)):
                continue  # no ASN of the path in a bogon span: nearly every route
        except TypeError:
            pass  # an AS_SET in the path: the walk below looks into it
        asn = _first_bogon_asn(p.path, spans)
        if asn is None:
            continue  # one observation per route is enough: the first bogon ASN
        reason = bogon_asn(asn)
        for tenant_id, severity in _scopes(p, ref).items():
            yield p.observe(
                type=ConflictType.BOGON_ASN,
                severity=severity,
                tenant_id=tenant_id,
                detail_key=str(asn),
                details={"bogon_asn": asn, "reason": reason},
            )
