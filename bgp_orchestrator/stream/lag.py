"""A consumer group's lag and progress as ``bgpo status`` shows them.

Lag comes from Kafka (the log's end against the group's committed offset);
the time since a partition last progressed from what its consumer published
to Redis (:class:`~.progress.ProgressStore`). A partition with lag that has
not progressed for ``stall_after_s`` — or whose lag no consumer reports on at
all — is stalled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bgp_orchestrator.stream.progress import ProgressStore, PublishedProgress


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    end: int
    committed: int | None
    published: PublishedProgress | None

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))

    def since_progress(self, now: float) -> float | None:
        if self.published is None:
            return None
        return max(0.0, now - self.published.progress_at)

    def stalled(self, stall_after_s: float, now: float) -> bool:
        if self.lag == 0:
            return False
        since = self.since_progress(now)
        return since is None or since > stall_after_s


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    partitions: list[PartitionLag]
    stall_after_s: float

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def stalled(self, now: float | None = None) -> list[PartitionLag]:
        now = now or time.time()
        return [p for p in self.partitions if p.stalled(self.stall_after_s, now)]

    def waiting(self, now: float | None = None) -> dict[str, list[int]]:
        """Outages the group's consumers are waiting out now: cause -> partitions (records
        older than a minute are a dead consumer's, and count as stalls instead)."""
        now = now or time.time()
        out: dict[str, list[int]] = {}
        for p in self.partitions:
            published = p.published
            if published is not None and published.outage and now - published.seen_at < 60:
                out.setdefault(published.outage, []).append(p.partition)
        return out

    def describe(self, now: float | None = None) -> str:
        now = now or time.time()
        lagging = [p for p in self.partitions if p.lag]
        text = (
            f"lag {self.lag:,} records on {len(lagging)} of {len(self.partitions)} partitions"
            if lagging
            else f"caught up on {len(self.partitions)} partitions"
        )
        since = [s for p in lagging if (s := p.since_progress(now)) is not None]
        if since:
            text += f", longest without progress {max(since):.0f}s"
        resets = {
            p.partition: p.published.reset_at
            for p in self.partitions
            if p.published is not None and p.published.reset_at is not None
        }
        if resets:
            partition, at = max(resets.items(), key=lambda item: item[1])
            text += (
                f"; log reset detected on {len(resets)} partition(s), last "
                f"{now - at:.0f}s ago on partition {partition} "
                "(the broker lost its log: state rebuilt from the new one)"
            )
        for cause, partitions in self.waiting(now).items():
            text += f"; waiting on partitions {partitions}: {cause}"
        for p in self.stalled(now):
            seconds = p.since_progress(now)
            if p.published is None:
                why = "no consumer has reported on it"
            else:
                why = (
                    f"no progress for {seconds:.0f}s (last owner {p.published.owner}, "
                    f"{p.published.state})"
                )
            text += f"; partition {p.partition} stalled: {p.lag:,} records behind, {why}"
        return text


async def group_lag(
    bootstrap: str, topic: str, group: str, progress: ProgressStore, stall_after_s: float
) -> GroupLag:
    """Read the group's offsets from Kafka (without joining it) and its progress from Redis."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster's metadata
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps) if tps else {}
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    published = await progress.read()
    return GroupLag(
        group,
        topic,
        [
            PartitionLag(p.partition, ends[p], committed[p.partition], published.get(p.partition))
            for p in tps
        ],
        stall_after_s,
    )
