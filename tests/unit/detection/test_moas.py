"""MOAS under storms: bounded state, bounded work per announcement, one conflict per prefix."""

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection.batch import prepare
from bgp_orchestrator.detection.checkpoint import dump_state, load_state
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.moas import MAX_ORIGINS, SAMPLE, moas
from bgp_orchestrator.detection.pipeline import Pipeline
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.scenario import reference_from_json
from bgp_orchestrator.detection.state import DetectorState
from tests.unit.detection.timing import cpu_seconds

WINDOW = 600.0
TENANT_PREFIX = "45.65.12.0/24"


def _reference() -> Reference:
    return reference_from_json(
        {
            "tenants": [{"id": 1, "asns": [200100], "neighbors": {"3356": "upstream"}}],
            "prefixes": [{"tenant_id": 1, "prefix": TENANT_PREFIX, "origin_asns": [200100]}],
            "settings": {"moas_window_s": WINDOW},
        }
    )


def _announce(i: int, prefix: str, origin: int, ts: float) -> Update:
    peer = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return Update(Kind.ANNOUNCE, ts, peer, 3356, prefix, (3356, origin), collector="rrc00")


def _run(updates: list[Update], ref: Reference, state: DetectorState) -> list[Conflict]:
    return list(moas(prepare(updates, ref, []), ref, state))


def test_one_prefix_with_five_thousand_origins_is_bounded_and_one_conflict() -> None:
    ref, state = _reference(), DetectorState()
    updates = [_announce(i, "8.8.8.0/24", 200000 + i, 1000.0 + i * 0.01) for i in range(5000)]
    batch = prepare(updates, ref, [])
    with cpu_seconds() as spent:
        conflicts = list(moas(batch, ref, state))
    elapsed = spent[0]
    assert elapsed < 0.5, f"{elapsed:.2f}s for 5,000 origins"  # ~0.02 s; was ~1.5 s
    assert len(state.origins["8.8.8.0/24"]) <= MAX_ORIGINS
    assert len(conflicts) == 4999  # every new origin is an observation ...
    assert {c.key for c in conflicts} == {"0|moas|8.8.8.0/24||"}  # ... of one conflict
    for c in conflicts:
        sample = c.details["origins"]
        assert len(sample) <= SAMPLE and sample == sorted(sample)
        assert 2 <= c.details["origin_count"] <= MAX_ORIGINS
    last = conflicts[-1]
    assert last.details["new_origin"] == 204999
    assert last.details["origin_count"] == MAX_ORIGINS
    # the most recent origins are the ones kept
    assert set(state.origins["8.8.8.0/24"]) == set(range(205000 - MAX_ORIGINS, 205000))


def test_a_storm_on_a_tenant_prefix_is_one_moas_and_one_hijack_per_origin() -> None:
    ref = _reference()
    pipeline = Pipeline(ref)
    updates = [_announce(0, TENANT_PREFIX, 200100, 1000.0)]
    updates += [_announce(i, TENANT_PREFIX, 300000 + i, 1000.0 + i) for i in range(1, 501)]
    conflicts = pipeline.process(updates).conflicts
    assert pipeline.errors == {}
    moas_keys = {c.key for c in conflicts if c.type == ConflictType.MOAS}
    hijack_keys = {c.key for c in conflicts if c.type == ConflictType.EXACT_HIJACK}
    assert moas_keys == {f"1|moas|{TENANT_PREFIX}||"}
    assert {c.severity for c in conflicts if c.type == ConflictType.MOAS} == {Severity.LOW}
    assert len(hijack_keys) == 500
    assert len(pipeline.state.origins[TENANT_PREFIX]) <= MAX_ORIGINS


def test_many_prefixes_with_several_origins_each() -> None:
    ref, state = _reference(), DetectorState()
    updates = [
        _announce(
            i * 4 + k, f"{20 + i // 65536}.{(i >> 8) & 255}.{i & 255}.0/24", 300000 + k, 1000.0
        )
        for i in range(20_000)
        for k in range(4)
    ]
    batch = prepare(updates, ref, [])
    with cpu_seconds() as spent:
        conflicts = list(moas(batch, ref, state))
    elapsed = spent[0]
    assert elapsed < 1.0, f"{elapsed:.2f}s for 80,000 announcements"  # ~0.1 s
    assert len({c.key for c in conflicts}) == 20_000  # one per prefix, not one per origin
    assert len(conflicts) == 60_000
    assert max(len(seen) for seen in state.origins.values()) == 4


def test_known_origin_is_one_update_and_raises_nothing() -> None:
    ref, state = _reference(), DetectorState()
    first = _run([_announce(0, "8.8.8.0/24", 15169, 1000.0)], ref, state)
    again = _run([_announce(i, "8.8.8.0/24", 15169, 1000.0 + i) for i in range(1, 100)], ref, state)
    assert first == again == []
    assert state.origins["8.8.8.0/24"] == {15169: 1099.0}


def test_expired_origins_are_dropped_when_the_prefix_is_touched() -> None:
    ref, state = _reference(), DetectorState()
    _run([_announce(0, "8.8.8.0/24", 15169, 1000.0)], ref, state)
    late = _run([_announce(1, "8.8.8.0/24", 36040, 1000.0 + WINDOW + 1)], ref, state)
    assert late == []  # the other origin is older than the window
    assert state.origins["8.8.8.0/24"] == {36040: 1000.0 + WINDOW + 1}
    # the expired origin coming back while another is present is a MOAS again
    back = _run([_announce(2, "8.8.8.0/24", 15169, 1000.0 + WINDOW + 2)], ref, state)
    assert [c.details["new_origin"] for c in back] == [15169]


def test_prefixes_nobody_touches_again_are_swept_after_a_window() -> None:
    ref, state = _reference(), DetectorState()
    _run([_announce(i, f"30.0.{i >> 8}.{i & 255}/32", 64, 1000.0) for i in range(1000)], ref, state)
    assert len(state.origins) == 1000
    _run([_announce(0, "8.8.8.0/24", 15169, 1000.0 + 2 * WINDOW + 1)], ref, state)
    assert list(state.origins) == ["8.8.8.0/24"]


def test_state_from_before_the_bound_shrinks_at_the_next_new_origin() -> None:
    ref, state = _reference(), DetectorState()
    state.origins["8.8.8.0/24"] = {200000 + i: 1000.0 + i * 0.001 for i in range(1000)}
    conflicts = _run([_announce(0, "8.8.8.0/24", 15169, 1001.0)], ref, state)
    assert len(state.origins["8.8.8.0/24"]) == MAX_ORIGINS
    assert 15169 in state.origins["8.8.8.0/24"]
    assert conflicts[0].details["origin_count"] == MAX_ORIGINS


def test_the_checkpoint_format_holds_the_bounded_state() -> None:
    ref, state = _reference(), DetectorState()
    _run([_announce(i, "8.8.8.0/24", 200000 + i, 1000.0 + i) for i in range(100)], ref, state)
    restored, _ = load_state(dump_state(state))
    assert restored.origins == state.origins
    # a restored state goes on as the original would
    more = [_announce(200, "8.8.8.0/24", 15169, 1200.0)]
    assert [c.details for c in _run(more, ref, restored)] == [
        c.details for c in _run(more, ref, state)
    ]
