"""Checkpoints: the state survives a round trip in slices, and a stale owner is fenced."""

import pytest

from bgp_orchestrator.detection.checkpoint import (
    SLICE,
    MemoryCheckpoints,
    StaleOwner,
    dump_state,
    load_state,
)
from bgp_orchestrator.detection.state import DetectorState, UpstreamVisibility, Visibility
from bgp_orchestrator.stream.probe import Fingerprint


def test_the_state_round_trips_across_slices() -> None:
    state = DetectorState()
    for i in range(2 * SLICE + 7):
        state.origins[f"60.{i // 256 % 256}.{i % 256}.0/24-{i}"] = {64_500 + i % 3: float(i)}
    state.visibility["45.64.0.0/16"] = Visibility({"rrc00|10.0.0.1", "rrc01|10.0.0.2"}, 3, True)
    last = Fingerprint(41, 1_700_000_000_000, 123456)
    back, fingerprint = load_state(dump_state(state, last))
    assert back.origins == state.origins
    assert back.visibility == state.visibility
    assert fingerprint == last
    assert load_state(dump_state(state))[1] is None


def test_per_upstream_visibility_round_trips_and_old_checkpoints_still_load() -> None:
    import msgpack  # type: ignore[import-untyped]

    state = DetectorState()
    state.upstream_visibility["45.65.12.0/24"] = UpstreamVisibility(
        {"rrc00|10.0.0.1": 3356, "rrc00|10.0.0.2": 1299, "rrc01|10.0.0.3": 1299},
        {3356: 1, 1299: 2},
        {3356, 1299, 6939},
        {6939},
    )
    back, _ = load_state(dump_state(state))
    assert back.upstream_visibility == state.upstream_visibility
    # a checkpoint of the same format written before the per-upstream part existed
    version, slices, visibility, record, *_ = msgpack.unpackb(dump_state(state))
    older, _ = load_state(msgpack.packb([version, slices, visibility, record]))
    assert older.upstream_visibility == {}


def test_an_unknown_format_is_refused() -> None:
    import msgpack  # type: ignore[import-untyped]

    with pytest.raises(ValueError, match="format 1"):
        load_state(msgpack.packb([1, {}, {}]))


async def test_a_stale_owner_cannot_overwrite_the_new_owners_checkpoint() -> None:
    store = MemoryCheckpoints()
    await store.claim(0, "old")
    await store.save(0, 10, b"old state", "old")
    await store.claim(0, "new")  # the partition moved in a rebalance
    with pytest.raises(StaleOwner):
        await store.save(0, 12, b"stale state", "old")
    await store.save(0, 11, b"new state", "new")
    assert await store.load(0) == (11, b"new state")
