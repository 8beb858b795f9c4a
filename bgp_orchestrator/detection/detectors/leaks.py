"""Route leaks (RFC 7908): valley-free violations, and NO_EXPORT routes that crossed an AS.

A naive valley-free rule flags about a quarter of real announcements, because
inferred relationships are incomplete and real ones are hybrid. To keep alerts
few and explainable this detector

* judges only paths that matter to a tenant (its prefixes, or its ASN in the
  middle of the path) unless ``leak_scope`` is "global";
* needs both links around the leaker to be known; an unknown link is unknown,
  not a violation;
* treats siblings as one network and the peer links of open-peering networks
  (more than ``open_peering_degree`` peers, e.g. AS6939) as possible partial
  transit, so they never make a leak on their own;
* says in every alert which AS leaked, from whom and to whom, and how.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bgp_orchestrator.bgp.update import NO_EXPORT
from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.aspa import procedure_for
from bgp_orchestrator.detection.detectors.scopes import tenant_scopes
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState
from bgp_orchestrator.reference.aspa import AspaState, Verdict
from bgp_orchestrator.reference.asrel import Rel, Relationships

LEAK_TYPES = {
    ("provider", "provider"): "type 1: hairpin (provider route sent to a provider)",
    ("peer", "peer"): "type 2: lateral (peer route sent to a peer)",
    ("provider", "peer"): "type 3: provider route sent to a peer",
    ("peer", "provider"): "type 4: peer route sent to a provider",
}


@dataclass(frozen=True)
class Leak:
    leaker: int
    received_from: int
    sent_to: int
    learned_via: str  # "provider" or "peer"
    exported_to: str  # "provider" or "peer"

    @property
    def kind(self) -> str:
        return LEAK_TYPES[(self.learned_via, self.exported_to)]

    @property
    def link(self) -> str:
        return f"{self.received_from}>{self.leaker}>{self.sent_to}"


class LeakJudge:
    """Valley-free judgement of one path with the precision rules above."""

    def __init__(self, rels: Relationships, open_peering_degree: int) -> None:
        self.rels = rels
        self.open_peering: frozenset[int] = rels.heavy_peers(open_peering_degree)

    def _role(self, a: int, b: int) -> str | None:
        """What ``a`` is to ``b``: provider, customer, peer, sibling, or None if unknown."""
        rel = self.rels.get(a, b)
        if rel is None:
            return None
        if rel == Rel.PEER and (a in self.open_peering or b in self.open_peering):
            return "partial"
        return {
            Rel.PROVIDER: "provider",
            Rel.CUSTOMER: "customer",
            Rel.PEER: "peer",
            Rel.SIBLING: "sibling",
        }[rel]

    def judge(self, path: list[int]) -> Leak | None:
        """``path`` is collector side first, origin last, prepending removed."""
        # Merge siblings into the AS next to them: they act as one network.
        hops: list[int] = []
        for asn in path:
            if hops and self._role(hops[-1], asn) == "sibling":
                continue
            hops.append(asn)
        # The route travels from the end (origin) towards the start.
        for i in range(len(hops) - 2, 0, -1):
            sender, leaker, receiver = hops[i + 1], hops[i], hops[i - 1]
            inbound = self._role(sender, leaker)  # what the sender is to the leaker
            outbound = self._role(receiver, leaker)  # what the receiver is to the leaker
            if inbound not in ("provider", "peer") or outbound not in ("provider", "peer"):
                continue
            return Leak(leaker, sender, receiver, inbound, outbound)
        return None


def _judge(ref: Reference, state: DetectorState) -> LeakJudge | None:
    rels = ref.relationships
    if rels is None or not len(rels):
        return None
    judge = state.leak_judge
    if judge is None or state.leak_judge_version != ref.version:
        judge = LeakJudge(rels, ref.settings.open_peering_degree)
        state.leak_judge, state.leak_judge_version = judge, ref.version
    assert isinstance(judge, LeakJudge)
    return judge


def route_leak(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    judge = _judge(ref, state)
    if judge is None:
        return
    global_scope = ref.settings.leak_scope == "global"
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or len(p.path) < 3:
            continue
        if not (global_scope or p.covering or p.transit_tenants):
            continue
        if any(isinstance(e, tuple) for e in p.path):
            continue  # AS_SETs hide the order of the ASes: no valley can be judged
        leak = judge.judge(p.path)  # type: ignore[arg-type]
        if leak is None:
            continue
        scopes = tenant_scopes(
            p,
            ref,
            own_prefix=Severity.HIGH,
            involved=Severity.CRITICAL,  # the tenant itself leaked
            involved_asn=leak.leaker,
            global_scope=global_scope,
        )
        verdicts: dict[str, Verdict] = {}
        for tenant_id, scope_severity in scopes.items():
            severity = scope_severity
            details = {
                "leaker": leak.leaker,
                "received_from": leak.received_from,
                "sent_to": leak.sent_to,
                "learned_via": leak.learned_via,
                "exported_to": leak.exported_to,
                "leak_type": leak.kind,
                "explanation": f"AS{leak.leaker} learned the route from its "
                f"{leak.learned_via} AS{leak.received_from} and exported it to its "
                f"{leak.exported_to} AS{leak.sent_to}",
            }
            if ref.aspas is not None and len(ref.aspas):
                severity = _weigh_with_aspa(p, ref, tenant_id, severity, details, verdicts)
            yield p.observe(
                type=ConflictType.ROUTE_LEAK,
                severity=severity,
                tenant_id=tenant_id,
                detail_key=leak.link,
                details=details,
            )


def _weigh_with_aspa(
    p: Prepared,
    ref: Reference,
    tenant_id: int | None,
    severity: Severity,
    details: dict[str, object],
    verdicts: dict[str, Verdict],
) -> Severity:
    """The valley-free rule reads inferred relationships; the ASPA objects of the ASes
    on the path are their own word. A path ASPA shows valid is no leak by their
    authorisations: the alarm is kept (the inference may be right where an ASPA is
    stale) but downgraded to LOW, and says why; an invalid one corroborates it."""
    assert ref.aspas is not None
    procedure = procedure_for(p, ref, tenant_id)
    verdict = verdicts.get(procedure)
    if verdict is None:
        verdict = verdicts[procedure] = ref.aspas.verify(p.path, procedure)
    details["aspa"] = {"state": verdict.state.value, "procedure": procedure}
    if verdict.state is AspaState.VALID:
        details["aspa"] = {
            "state": verdict.state.value,
            "procedure": procedure,
            "downgraded_from": severity.value,
            "why": "the ASPA objects of the ASes on the path authorise every hop it needs "
            f"({verdict.reason}); the valley-free judgement rests on inferred relationships",
        }
        return Severity.LOW
    if verdict.state is AspaState.INVALID:
        details["aspa"] = {
            "state": verdict.state.value,
            "procedure": procedure,
            "corroborates": verdict.reason,
        }
    return severity


def no_export_violation(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    """A tenant's route tagged NO_EXPORT (RFC 1997) that an external AS passed on."""
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or not p.covering or NO_EXPORT not in u.communities:
            continue
        for m in p.owners().values():
            tenant = ref.tenants.get(m.tenant_id)
            own = (tenant.asns if tenant else frozenset()) | m.origins
            # The first AS after the tenant's own received the route with NO_EXPORT
            # and still advertised it over eBGP (towards the collector).
            outsiders = [e for e in p.path if isinstance(e, int) and e not in own]
            if not outsiders:
                continue
            violator = outsiders[-1]
            yield p.observe(
                type=ConflictType.NO_EXPORT,
                severity=Severity.MEDIUM,
                tenant_id=m.tenant_id,
                detail_key=str(violator),
                monitored_prefix=m.prefix,
                details={
                    "violator": violator,
                    "community": "65535:65281 (NO_EXPORT)",
                    "explanation": f"AS{violator} received the route with NO_EXPORT and "
                    "advertised it to another AS",
                },
            )
