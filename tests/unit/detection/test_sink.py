"""Aggregation of observations: tenant conflicts keep their identity, global ones fold per
prefix and type with a capped sample."""

from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.sink import (
    GLOBAL_PEERS,
    SAMPLE_ORIGINS,
    SAMPLE_PATHS,
    WriteFilter,
    aggregate,
    storage_key,
)


def observation(
    tenant: int | None, origin: int, peer: str = "rrc00|10.0.0.1", t: float = 1.0
) -> Conflict:
    return Conflict(
        type=ConflictType.RPKI_INVALID,
        severity=Severity.INFO if tenant is None else Severity.HIGH,
        tenant_id=tenant,
        prefix="60.1.0.0/24",
        origin_asn=origin,
        as_path=f"3333 174 {origin}",
        peer=peer,
        seen_at=t,
        detail_key="invalid-origin",
    )


def test_global_observations_fold_per_prefix_and_type_with_a_capped_sample() -> None:
    storm = [
        observation(None, 10_000 + i, f"rrc00|10.0.{i // 250}.{i % 250}", t=i) for i in range(500)
    ]
    [agg] = aggregate(storm)
    assert agg.key == storage_key(storm[0]) == "0|rpki-invalid|60.1.0.0/24"
    assert agg.observations == 500
    assert len(agg.origins) == SAMPLE_ORIGINS and len(agg.peers) == GLOBAL_PEERS
    assert len(agg.paths) == SAMPLE_PATHS
    details = agg.details()
    assert details["observations"] == 500 and details["origins"] == sorted(agg.origins)
    assert agg.last_seen == 499 and agg.first_seen == 0


def test_tenant_conflicts_keep_one_row_per_origin() -> None:
    aggregates = aggregate([observation(7, 64_500), observation(7, 64_501), observation(7, 64_500)])
    assert len(aggregates) == 2
    assert {a.key for a in aggregates} == {observation(7, 64_500).key, observation(7, 64_501).key}
    assert all("observations" not in a.details() for a in aggregates)


def test_absorb_merges_aggregates_of_one_row_across_batches() -> None:
    [first] = aggregate([observation(None, 1, t=1.0), observation(None, 2, t=2.0)])
    [second] = aggregate([observation(None, 3, "rrc01|10.9.9.9", t=5.0)])
    first.absorb(second)
    assert first.observations == 3
    assert first.origins == {1, 2, 3} and "rrc01|10.9.9.9" in first.peers
    assert (first.first_seen, first.last_seen) == (1.0, 5.0)


def test_write_filter_skips_unchanged_rows_and_rewrites_a_new_origin() -> None:
    f = WriteFilter(refresh_s=60)
    [agg] = aggregate([observation(None, 1)])
    assert f.needed([agg]) == [agg]
    f.written([agg])
    [same] = aggregate([observation(None, 1, t=30.0)])
    assert f.needed([same]) == []
    [new_origin] = aggregate([observation(None, 2, t=30.0)])
    assert f.needed([new_origin]) == [new_origin]
    [later] = aggregate([observation(None, 1, t=100.0)])
    assert f.needed([later]) == [later]
