"""Route-leak evidence: confidence from novelty, spread, propagation, siblings and ASPA;
observations below the threshold, promoted when the leak grows; bounded, checkpointed state."""

from __future__ import annotations

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection import scenario
from bgp_orchestrator.detection.checkpoint import dump_state, load_state
from bgp_orchestrator.detection.conflict import Conflict, Severity
from bgp_orchestrator.detection.detectors import leaks
from bgp_orchestrator.detection.pipeline import DETECTORS, Pipeline

RELS = ["1299|200100|-1", "3356|200100|-1", "1299|200201|-1", "3356|2914|0", "3356|174|0"]
PEERS = [("10.0.0.1", 3356), ("10.0.0.2", 2914), ("10.0.0.3", 174)]


def _reference(settings: dict[str, object] | None = None, aspas: list[object] | None = None):  # type: ignore[no-untyped-def]
    data: dict[str, object] = {
        "tenants": [{"id": 1, "asns": [], "neighbors": {}}],
        "prefixes": [
            {
                "tenant_id": 1,
                "prefix": f"45.{i}.0.0/24",
                "origin_asns": [200201],
                "max_length": 24,
                "announced": True,
            }
            for i in range(30)
        ],
        "relationships": RELS,
        "settings": {"leak_baseline_s": 600, **(settings or {})},
    }
    if aspas is not None:
        data["aspas"] = aspas
    return scenario.reference_from_json(data, "leak-evidence")


def _leak(prefix: str, peer: tuple[str, int], t: float) -> Update:
    """AS200100 passes its provider AS1299's route to its other provider AS3356."""
    address, asn = peer
    path = (3356, 200100, 1299, 200201) if asn == 3356 else (asn, 3356, 200100, 1299, 200201)
    return Update(Kind.ANNOUNCE, t, address, asn, prefix, path, collector="rrc00")


def _background(t: float) -> Update:
    return Update(Kind.ANNOUNCE, t, "10.0.0.2", 2914, "45.0.0.0/24", (2914, 1299, 200201))


def _leaks(pipeline: Pipeline, updates: list[Update]) -> list[Conflict]:
    return [c for c in pipeline.process(updates).conflicts if c.type.value == "route-leak"]


def _pipeline(ref):  # type: ignore[no-untyped-def]
    return Pipeline(ref, detectors={"route-leak": DETECTORS["route-leak"]})


def test_every_alarm_carries_its_evidence_and_a_confidence() -> None:
    pipeline = _pipeline(_reference())
    got = _leaks(pipeline, [_background(1000.0), _leak("45.1.0.0/24", PEERS[0], 2000.0)])
    assert len(got) == 1
    c = got[0]
    assert c.severity is Severity.INFO and c.detail_key == "1299>200100>3356|observation"
    assert c.details["alert"] is False and c.details["confidence"] == 0.4
    assert c.details["evidence"]["novelty"] == "new"
    assert c.details["evidence"]["prefixes_in_window"] == 1


def test_a_spreading_new_leak_is_alerted_and_its_first_routes_promoted() -> None:
    pipeline = _pipeline(_reference())
    updates = [_background(1000.0)]
    for i in range(5):
        updates += [_leak(f"45.{i}.0.0/24", peer, 2000.0 + i) for peer in PEERS]
    got = _leaks(pipeline, updates)
    alerts = {c.prefix for c in got if c.severity is Severity.HIGH}
    assert alerts == {f"45.{i}.0.0/24" for i in range(5)}
    promoted = [c for c in got if c.details["evidence"].get("promoted_from_observation")]
    assert promoted and all(c.details["confidence"] >= 0.6 for c in promoted)
    assert all(c.detail_key == "1299>200100>3356" for c in got if c.details["alert"])
    # the rest of the leak is alerted at once
    later = _leaks(pipeline, [_leak("45.20.0.0/24", PEERS[1], 2100.0)])
    assert later[0].severity is Severity.HIGH
    assert later[0].details["evidence"]["part_of_alerted_leak"] is True


def test_a_pair_seen_before_the_baseline_is_long_standing_and_not_alerted() -> None:
    pipeline = _pipeline(_reference())
    _leaks(pipeline, [_leak("45.1.0.0/24", PEERS[0], 1000.0)])
    updates = [_leak(f"45.{i}.0.0/24", peer, 5000.0 + i) for i in range(25) for peer in PEERS]
    got = _leaks(pipeline, updates)
    assert got and all(c.severity is Severity.INFO for c in got)
    assert {c.details["evidence"]["novelty"] for c in got} == {"long-standing"}


def test_a_seeded_baseline_makes_a_pair_long_standing() -> None:
    ref = _reference()
    pipeline = _pipeline(ref)
    judge = leaks.LeakJudge(ref.relationships, 1000)  # type: ignore[arg-type]
    assert leaks.seed_baseline(pipeline.state, judge, [[3356, 200100, 1299, 200201]], 0.0) == 1
    updates = [_leak(f"45.{i}.0.0/24", peer, 5000.0 + i) for i in range(25) for peer in PEERS]
    assert all(c.severity is Severity.INFO for c in _leaks(pipeline, updates))


def test_aspa_invalid_corroborates_a_single_route() -> None:
    # AS200100 says its only provider is AS1299, and AS1299 and AS3356 have none: no
    # up-ramp and down-ramp cover AS200100 sending AS1299's route to AS3356
    aspas = [
        {"customer_asid": 200201, "providers": [1299]},
        {"customer_asid": 200100, "providers": [1299]},
        {"customer_asid": 1299, "providers": [0]},
        {"customer_asid": 3356, "providers": [0]},
    ]
    pipeline = _pipeline(_reference(aspas=aspas))
    got = _leaks(pipeline, [_background(1000.0), _leak("45.1.0.0/24", PEERS[0], 2000.0)])
    assert got[0].details["aspa"]["state"] == "invalid"
    assert got[0].severity is Severity.HIGH and got[0].details["confidence"] == 0.8


def test_zero_min_confidence_alerts_every_violation() -> None:
    pipeline = _pipeline(_reference({"leak_min_confidence": 0.0}))
    got = _leaks(pipeline, [_leak("45.1.0.0/24", PEERS[0], 2000.0)])
    assert got[0].severity is Severity.HIGH and got[0].detail_key == "1299>200100>3356"


def test_the_pairs_are_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(leaks, "MAX_PAIRS", 40)
    rels = [f"{10000 + i}|{20000 + i}|-1" for i in range(100)]
    rels += [f"{30000 + i}|{20000 + i}|-1" for i in range(100)]
    rels += [f"{10000 + i}|200201|-1" for i in range(100)]
    ref = scenario.reference_from_json(
        {
            "tenants": [{"id": 1, "asns": [], "neighbors": {}}],
            "prefixes": [
                {"tenant_id": 1, "prefix": "45.1.0.0/24", "origin_asns": [200201], "max_length": 24}
            ],
            "relationships": rels,
        }
    )
    pipeline = _pipeline(ref)
    updates = [
        Update(
            Kind.ANNOUNCE,
            float(i),
            "10.0.0.1",
            3356,
            "45.1.0.0/24",
            (3356, 30000 + i, 20000 + i, 10000 + i, 200201),
        )
        for i in range(100)
    ]
    _leaks(pipeline, updates)
    state = pipeline.state
    assert 0 < len(state.leak_pairs) <= 40
    assert {(a, b) for a, targets in state.leak_targets.items() for b in targets} == set(
        state.leak_pairs
    )


def test_the_leak_baseline_survives_a_checkpoint() -> None:
    pipeline = _pipeline(_reference())
    updates = [_background(1000.0)]
    updates += [_leak(f"45.{i}.0.0/24", peer, 2000.0 + i) for i in range(5) for peer in PEERS]
    _leaks(pipeline, updates)
    back, _ = load_state(dump_state(pipeline.state))
    assert back.leak_watch_start == pipeline.state.leak_watch_start == 1000.0
    assert back.leak_multi_vantage is True
    pair = back.leak_pairs[(200100, 3356)]
    original = pipeline.state.leak_pairs[(200100, 3356)]
    assert (pair.first_seen, pair.prefixes, pair.peers, pair.sources, pair.alerted) == (
        original.first_seen,
        original.prefixes,
        original.peers,
        original.sources,
        True,
    )
    assert back.leak_targets == {200100: {3356}}
    # a restored detector goes on alerting the leak it had alerted
    restored = Pipeline(pipeline.reference, back, {"route-leak": DETECTORS["route-leak"]})
    assert _leaks(restored, [_leak("45.9.0.0/24", PEERS[2], 2050.0)])[0].severity is Severity.HIGH


def test_a_new_leak_lasting_longer_than_the_baseline_stays_alerted() -> None:
    pipeline = _pipeline(_reference())
    updates = [_background(1000.0)]
    updates += [_leak(f"45.{i}.0.0/24", peer, 2000.0 + i) for i in range(5) for peer in PEERS]
    _leaks(pipeline, updates)
    # it goes on, a route every 100 s, until 800 s after it began (leak_baseline_s 600)
    later = [_leak(f"45.{i}.0.0/24", PEERS[0], 2000.0 + 100 * (i - 5)) for i in range(6, 14)]
    got = _leaks(pipeline, later)
    assert all(c.severity is Severity.HIGH for c in got), [c.details for c in got]
    assert got[-1].details["evidence"]["novelty"] == "long-standing"
