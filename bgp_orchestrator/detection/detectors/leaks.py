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
* says in every alert which AS leaked, from whom and to whom, and how;
* weighs the evidence a leak has and a long-standing path has not into a
  confidence (``details.confidence``, ``details.evidence``): whether the
  (leaker, receiver) pair is new against the baseline the detector learnt from
  its own stream (or :func:`seed_baseline` from earlier paths), how many
  prefixes it leaks and how many vantage ASes see it within a window, whether
  the leaker acts as the receiver's provider or sibling, and ASPA. Below
  ``leak_min_confidence`` an alarm is an observation (severity INFO, its own
  ``detail_key`` ending in ``|observation``); when a leak crosses the threshold
  the observations it held in the window are alerted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from bgp_orchestrator.bgp.update import NO_EXPORT
from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.aspa import procedure_for
from bgp_orchestrator.detection.detectors.scopes import tenant_scopes
from bgp_orchestrator.detection.reference import DetectionSettings, Reference
from bgp_orchestrator.detection.state import DetectorState, LeakPair
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


#: pairs kept in the state (the least recently seen quarter goes when it is full)
MAX_PAIRS = 50_000
#: per pair and window: prefixes and peers counted, sources kept, observations held
MAX_PREFIXES = 1000
MAX_PEERS = 200
MAX_SOURCES = 64
MAX_PENDING = 200

#: evidence weights of the confidence (see the README section on route-leak precision)
BASE = 0.2  # a valley-free violation over inferred relationships, nothing more
NEW = 0.2  # the pair had not leaked during the whole baseline before this
LONG_STANDING = -0.3  # the pair has been "leaking" for longer than the baseline
PREFIXES_SOME, PREFIXES_MANY = (5, 0.2), (20, 0.3)  # prefixes leaked in the window
PEERS_SOME, PEERS_MANY = (3, 0.1), (10, 0.15)  # collector peers that saw it
SIBLING_LIKE = -0.3  # the leaker also carries the receiver's routes onwards
ASPA_INVALID = 0.4
ASPA_VALID_CAP = 0.2


def _pair(state: DetectorState, leak: Leak, now: float, window: float) -> LeakPair:
    key = (leak.leaker, leak.sent_to)
    pairs = state.leak_pairs
    pair = pairs.get(key)
    if pair is None:
        if len(pairs) >= MAX_PAIRS:
            _evict(state)
        pair = pairs[key] = LeakPair(now, now, now)
        state.leak_targets.setdefault(leak.leaker, set()).add(leak.sent_to)
    elif now - pair.window_start > window:
        # A new window: counts start again; an alerted leak still going on stays alerted.
        pair.alerted = pair.alerted and now - pair.last_seen <= window
        pair.alerted_new = pair.alerted_new and pair.alerted
        pair.window_start = now
        pair.prefixes.clear()
        pair.peers.clear()
        pair.pending.clear()
    pair.last_seen = max(pair.last_seen, now)
    return pair


def _evict(state: DetectorState) -> None:
    """Drop the least recently seen quarter of the pairs (amortised: once per quarter)."""
    ordered = sorted(state.leak_pairs.items(), key=lambda kv: kv[1].last_seen)
    for key, _ in ordered[: len(ordered) // 4]:
        del state.leak_pairs[key]
    state.leak_targets = {}
    for leaker, target in state.leak_pairs:
        state.leak_targets.setdefault(leaker, set()).add(target)


def seed_baseline(
    state: DetectorState, judge: LeakJudge, paths: Iterable[list[int]], at: float
) -> int:
    """Learn long-standing leaks from paths seen before (a RIB dump, an earlier stream):
    every pair they show leaking counts as first seen at ``at``. Returns the pairs added."""
    added = 0
    for path in paths:
        leak = judge.judge(path)
        if leak is None or (leak.leaker, leak.sent_to) in state.leak_pairs:
            continue
        pair = _pair(state, leak, at, 0.0)
        pair.sources.add(leak.received_from)
        added += 1
    if state.leak_watch_start is None or at < state.leak_watch_start:
        state.leak_watch_start = at
    return added


def _evidence(
    state: DetectorState, pair: LeakPair, leak: Leak, now: float, settings: DetectionSettings
) -> tuple[float, dict[str, object]]:
    """The confidence that this violation is a leak, and the evidence it rests on."""
    baseline = settings.leak_baseline_s
    watch = state.leak_watch_start if state.leak_watch_start is not None else now
    score = BASE
    if pair.first_seen <= now - baseline:
        novelty = "long-standing"
        score += LONG_STANDING
    elif pair.first_seen - watch >= baseline:
        novelty = "new"
        score += NEW
    else:
        novelty = "learning"  # not watched long enough before it to tell
    prefixes, peers = len(pair.prefixes), len(pair.peers)
    # Many prefixes from one vantage AS alone is what a session reset looks like (the
    # peer sends its whole table again): without propagation it counts half - where
    # propagation can be measured at all, i.e. the feed has more than one vantage AS.
    alone = peers < 2 and state.leak_multi_vantage
    spread = _step(prefixes, PREFIXES_SOME, PREFIXES_MANY) * (0.5 if alone else 1.0)
    score += spread + _step(peers, PEERS_SOME, PEERS_MANY)
    # Sibling awareness: a leaker that also passes the receiver's own routes on to
    # others acts as its provider or sibling, whatever the inference says.
    sibling_like = any(
        leak.sent_to in other.sources
        for target in state.leak_targets.get(leak.leaker, ())
        if target != leak.sent_to and (other := state.leak_pairs.get((leak.leaker, target)))
    )
    if sibling_like:
        score += SIBLING_LIKE
    evidence: dict[str, object] = {
        "novelty": novelty,
        "pair_first_seen": pair.first_seen,
        "prefixes_in_window": prefixes,
        "peers_in_window": peers,
        "window_s": settings.leak_window_s,
        "sibling_like": sibling_like,
        "single_vantage_feed": not state.leak_multi_vantage,
        "part_of_alerted_leak": pair.alerted,
    }
    return score, evidence


def _step(count: int, some: tuple[int, float], many: tuple[int, float]) -> float:
    if count >= many[0]:
        return many[1]
    return some[1] if count >= some[0] else 0.0


def route_leak(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    judge = _judge(ref, state)
    if judge is None:
        return
    settings = ref.settings
    global_scope = settings.leak_scope == "global"
    window = settings.leak_window_s
    threshold = settings.leak_min_confidence
    if state.leak_watch_start is None and batch:
        state.leak_watch_start = batch[0].u.timestamp  # the baseline learns from here on
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or len(p.path) < 3:
            continue
        if not (global_scope or p.covering or p.transit_tenants):
            continue
        vantage = u.peer_asn or u.peer_key
        if not state.leak_multi_vantage:
            if state.leak_vantage is None:
                state.leak_vantage = vantage
            state.leak_multi_vantage = vantage != state.leak_vantage
        if any(isinstance(e, tuple) for e in p.path):
            continue  # AS_SETs hide the order of the ASes: no valley can be judged
        leak = judge.judge(p.path)  # type: ignore[arg-type]
        if leak is None:
            continue
        now = u.timestamp
        pair = _pair(state, leak, now, window)
        if len(pair.prefixes) < MAX_PREFIXES:
            pair.prefixes.add(u.prefix)
        if len(pair.peers) < MAX_PEERS:
            pair.peers.add(vantage)  # how far it went: vantage ASes
        if len(pair.sources) < MAX_SOURCES:
            pair.sources.add(leak.received_from)
        base_score, evidence = _evidence(state, pair, leak, now, settings)
        # Counter-evidence found since an alert raised before the baseline could tell
        # ends that alert's hold on the rest of the pair's routes.
        against = bool(evidence["sibling_like"]) or evidence["novelty"] == "long-standing"
        out, held = _alarms(p, ref, leak, pair, base_score, evidence, against)
        alerting = any(c.details["alert"] for c in out)
        yield from out
        if alerting and not pair.alerted:
            pair.alerted = True
            pair.alerted_new = evidence["novelty"] == "new"
            # The observations that led up to it were the same leak: alert them now.
            confidence = max(
                (float(c.details["confidence"]) for c in out if c.details["alert"]),
                default=threshold,
            )
            for c, severity in pair.pending:
                yield _promoted(c, severity, evidence, confidence)
            pair.pending.clear()
        elif held and len(pair.pending) < MAX_PENDING:
            pair.pending.extend(held[: MAX_PENDING - len(pair.pending)])


def _alarms(
    p: Prepared,
    ref: Reference,
    leak: Leak,
    pair: LeakPair,
    base_score: float,
    evidence: dict[str, object],
    against: bool,
) -> tuple[list[Conflict], list[tuple[Conflict, Severity]]]:
    """One conflict per tenant the route concerns, alert or observation by its
    confidence; and the observations to hold for promotion (with their alert severity)."""
    threshold = ref.settings.leak_min_confidence
    scopes = tenant_scopes(
        p,
        ref,
        own_prefix=Severity.HIGH,
        involved=Severity.CRITICAL,  # the tenant itself leaked
        involved_asn=leak.leaker,
        global_scope=ref.settings.leak_scope == "global",
    )
    verdicts: dict[str, Verdict] = {}
    held: list[tuple[Conflict, Severity]] = []
    out: list[Conflict] = []
    for tenant_id, scope_severity in scopes.items():
        details: dict[str, object] = {
            "leaker": leak.leaker,
            "received_from": leak.received_from,
            "sent_to": leak.sent_to,
            "learned_via": leak.learned_via,
            "exported_to": leak.exported_to,
            "leak_type": leak.kind,
            "explanation": f"AS{leak.leaker} learned the route from its "
            f"{leak.learned_via} AS{leak.received_from} and exported it to its "
            f"{leak.exported_to} AS{leak.sent_to}",
            "evidence": dict(evidence),
        }
        score = base_score
        if ref.aspas is not None and len(ref.aspas):
            score = _weigh_with_aspa(p, ref, tenant_id, score, details, verdicts)
        aspa = details.get("aspa")
        disproved = isinstance(aspa, dict) and aspa.get("state") == AspaState.VALID.value
        if pair.alerted and not disproved and (pair.alerted_new or not against):
            score = max(score, threshold)  # the rest of a leak already alerted
        score = round(min(1.0, max(0.0, score)), 2)
        details["confidence"] = score
        alert = score >= threshold
        details["alert"] = alert
        conflict = p.observe(
            type=ConflictType.ROUTE_LEAK,
            severity=scope_severity if alert else Severity.INFO,
            tenant_id=tenant_id,
            detail_key=leak.link if alert else f"{leak.link}|observation",
            details=details,
        )
        out.append(conflict)
        if not alert and scope_severity is not Severity.INFO and not disproved:
            held.append((conflict, scope_severity))
    return out, held


def _promoted(
    c: Conflict, severity: Severity, evidence: dict[str, object], confidence: float
) -> Conflict:
    """An observation of a leak that has since reached an alert's confidence, as an alert
    (its own route, peer and time; the evidence of the whole leak)."""
    details = dict(c.details)
    details["evidence"] = {
        **evidence,
        "promoted_from_observation": True,
        "confidence_when_observed": c.details["confidence"],
    }
    details["confidence"] = confidence
    details["alert"] = True
    return replace(
        c, severity=severity, detail_key=c.detail_key.removesuffix("|observation"), details=details
    )


def _weigh_with_aspa(
    p: Prepared,
    ref: Reference,
    tenant_id: int | None,
    score: float,
    details: dict[str, object],
    verdicts: dict[str, Verdict],
) -> float:
    """The valley-free rule reads inferred relationships; the ASPA objects of the ASes
    on the path are their own word. A path ASPA shows valid is no leak by their
    authorisations: the confidence is capped low (an observation, kept because the
    inference may be right where an ASPA is stale), and says why; an invalid one
    corroborates it."""
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
            "downgraded_from": round(min(1.0, score), 2),
            "why": "the ASPA objects of the ASes on the path authorise every hop it needs "
            f"({verdict.reason}); the valley-free judgement rests on inferred relationships",
        }
        return min(score, ASPA_VALID_CAP)
    if verdict.state is AspaState.INVALID:
        details["aspa"] = {
            "state": verdict.state.value,
            "procedure": procedure,
            "corroborates": verdict.reason,
        }
        return score + ASPA_INVALID
    return score


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
