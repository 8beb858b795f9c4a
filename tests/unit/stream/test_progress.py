"""Partition progress: lag, stalls, and what bgpo status makes of the published records."""

import orjson

from bgp_orchestrator.stream.lag import GroupLag, PartitionLag
from bgp_orchestrator.stream.progress import (
    PartitionProgress,
    ProgressStore,
    PublishedProgress,
    stall_report,
)


def test_a_partition_with_lag_and_no_progress_is_stalled() -> None:
    p = PartitionProgress(3, position=120, committed=100, highwater=140, state="paused")
    p.progress_at = 1_000.0
    assert p.lag == 40
    assert not p.stalled(60, now=1_050.0)
    assert p.stalled(60, now=1_061.0)
    assert "partition 3 is stalled: 40 records" in stall_report(p, now=1_061.0)
    p.committed_to(140, now=1_062.0)
    assert p.lag == 0 and not p.stalled(60, now=2_000.0)
    p.committed_to(120, now=3_000.0)  # never backwards
    assert p.committed == 140 and p.progress_at == 1_062.0


def test_a_caught_up_partition_is_never_stalled() -> None:
    p = PartitionProgress(0, position=10, committed=10, highwater=10)
    p.progress_at = 0.0
    assert not p.stalled(1, now=10_000.0)


def test_records_on_a_long_idle_partition_are_not_a_stall_at_once() -> None:
    """Found by `bgpo chaos run postgres-stop --short`: a partition idle for over the
    stall time got records while PostgreSQL was away; it counted as stalled at once,
    failed both detectors' health checks and Serve replaced them (40 s to recover)."""
    p = PartitionProgress(5, position=10, committed=10, highwater=10, state="running")
    p.progress_at = 0.0  # the last commit, long ago
    p.saw_end(12, now=1_000.0)  # two records arrive; the worker is paused by an outage
    assert p.lag == 2
    assert not p.stalled(60, now=1_030.0)
    assert p.stalled(60, now=1_061.0)  # still no progress a stall time later: stalled
    p.saw_end(14, now=1_070.0)  # more records while it has lag: the clock keeps running
    assert p.stalled(60, now=1_071.0)


class Hash:
    """Redis' HSET/HGETALL over one dict (enough for the store's two calls)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[bytes, bytes]] = {}

    async def hset(self, key: str, mapping: dict[str, bytes]) -> None:
        self.data.setdefault(key, {}).update({k.encode(): v for k, v in mapping.items()})

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return self.data.get(key, {})


async def test_published_progress_reads_back_with_its_note() -> None:
    redis = Hash()
    store = ProgressStore(redis, "g", "t")
    p = PartitionProgress(2, position=5, committed=4, highwater=9, state="paused")
    await store.publish("detector-a", [p], note="PostgreSQL is not answering")
    redis.data[store.key][b"7"] = b"not json"
    read = await store.read()
    assert list(read) == [2]
    assert read[2].committed == 4 and read[2].owner == "detector-a"
    assert read[2].state == "paused: PostgreSQL is not answering"
    assert orjson.loads(redis.data[store.key][b"2"])["highwater"] == 9


def published(partition: int, progress_at: float) -> PublishedProgress:
    return PublishedProgress(
        partition, 10, 20, progress_at, 995.0, "w1", "paused: PG down", outage="PG down"
    )


def test_status_names_stalled_partitions_and_their_cause() -> None:
    group = GroupLag(
        "bgpo-detectors",
        "bgp.updates",
        [
            PartitionLag(0, end=50, committed=50, published=published(0, 0.0)),
            PartitionLag(1, end=30, committed=10, published=published(1, 900.0)),
            PartitionLag(2, end=30, committed=10, published=published(2, 990.0)),
            PartitionLag(3, end=5, committed=None, published=None),
        ],
        stall_after_s=60,
    )
    stalled = group.stalled(now=1000.0)
    assert [p.partition for p in stalled] == [1, 3]
    text = group.describe(now=1000.0)
    assert text.startswith("lag 45 records on 3 of 4 partitions")
    assert "partition 1 stalled: 20 records behind, no progress for 100s" in text
    assert "paused: PG down" in text
    assert "partition 3 stalled: 5 records behind, no consumer has reported on it" in text
    assert group.waiting(now=1000.0) == {"PG down": [0, 1, 2]}
    assert "waiting on partitions [0, 1, 2]: PG down" in text
    assert group.waiting(now=2000.0) == {}  # a minute without news: a dead consumer
