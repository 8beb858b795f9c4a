"""A stream that stops: both stages close and merge its last windows on the replica's clock,
also when some partition of the updates topic never carried an update.

The stages run here without Kafka: records go in through ``process`` as the consume
loop would hand them over, the partial stage's producer is a list, and the clock is
a number the test moves (no sleeping).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.feature_store import offline_dir
from bgp_orchestrator.sessionstats import SessionStatsWorker
from bgp_orchestrator.sessionstats import partials as wire
from bgp_orchestrator.sessionstats.merge import SessionMerger
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stream.loop import ConsumeLoop, LogInfo
from bgp_orchestrator.stream.progress import PartitionProgress

W = 300
GRACE = 15.0
PARTITIONS = 3
CARRYING = 2  # partitions 0 and 1 carry the stream; 2 never carries an update
# Event time a day ahead of the test's clock readings, as in a replay of old (or
# fast-forwarded) data: only the clock's idle time may close its windows.
T0 = int(datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp())


@dataclass
class Record:
    offset: int
    value: bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sent:
    """The producer: what the partial stage publishes, per session-windows partition."""

    def __init__(self) -> None:
        self.records: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}

    async def send(self, topic: str, value: bytes, partition: int) -> Any:
        self.records[partition].append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Points:
    def __init__(self) -> None:
        self.points: list[MetricPoint] = []

    async def submit(self, points: Sequence[MetricPoint]) -> None:
        self.points.extend(points)


def ann(t: float, peer: int, prefix: str) -> Update:
    return Update(
        Kind.ANNOUNCE,
        T0 + t,
        f"192.0.2.{peer}",
        64500 + peer,
        prefix,
        (64500 + peer, 7),
        collector="c",
    )


def worker(tmp_path: Path, clock: Clock) -> tuple[SessionStatsWorker, Sent]:
    settings = Settings(data_dir=tmp_path, kafka_partitions=PARTITIONS, flap_window_s=W)
    w = SessionStatsWorker(settings, Points(), "127.0.0.1:9", grace_s=GRACE, clock=clock)
    sent = Sent()
    w.producer = sent
    return w, sent


async def assign(loop: ConsumeLoop, stage: Any, partitions: Sequence[int], end: int = 0) -> None:
    """What the consume loop does on an assignment: progress, then the stage's restore."""
    for p in partitions:
        # as the loop does: a partition never committed starts at its log's beginning,
        # its position not known until it delivers a record
        position = end if end else None
        loop.partitions[p] = PartitionProgress(p, position=position, highwater=end, state="running")
    await stage.assign(list(partitions), {p: LogInfo(None, end) for p in partitions})


async def deliver(loop: ConsumeLoop, stage: Any, batch: dict[int, list[Record]]) -> None:
    """Records fetched and processed: the partitions are then caught up."""
    await stage.process(batch)
    for p, records in batch.items():
        progress = loop.partitions[p]
        progress.position = progress.highwater = records[-1].offset + 1


async def merge_what_was_sent(w: SessionStatsWorker, sent: Sent, done: dict[int, int]) -> None:
    """Hand the merge stage the session-windows records it has not seen yet."""
    batch = {}
    for p, values in sent.records.items():
        new = values[done.get(p, 0) :]
        if new:
            batch[p] = [Record(done.get(p, 0) + i, v) for i, v in enumerate(new)]
            done[p] = len(values)
    if batch:
        await deliver(w.merge.loop, w.merge, batch)
    await w.merge.store(commit_due=True)


def stream_updates() -> dict[int, list[Record]]:
    """Two windows of updates on each partition, the last ones 10 s before the end of
    window 1, then nothing."""
    prefixes = [f"{10 + i}.{i}.0.0/24" for i in range(64)]
    by_partition: dict[int, list[str]] = {p: [] for p in range(CARRYING)}
    for prefix in prefixes:
        (p,) = codec.split_by_partition([ann(0, 1, prefix)], PARTITIONS)
        if p in by_partition:
            by_partition[p].append(prefix)
    out = {}
    for p, mine in by_partition.items():
        times = [i * (2 * W - 10) / 19 for i in range(20)]  # 0 .. 2W - 10
        updates = [ann(t, i % 3, mine[i % len(mine)]) for i, t in enumerate(times)]
        out[p] = [Record(i, codec.encode_batch([u])) for i, u in enumerate(updates)]
    return out


def stored_starts(settings: Settings) -> set[int]:
    frame = pd.read_parquet(offline_dir(settings))
    ends = pd.to_datetime(frame["event_timestamp"], utc=True).astype("int64") // 1_000_000_000
    return {int(e) - W for e in ends}


async def test_the_last_windows_of_a_stopped_stream_close_on_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    w, sent = worker(tmp_path, clock)
    await assign(w.partials.loop, w.partials, range(PARTITIONS))
    await assign(w.merge.loop, w.merge, range(PARTITIONS))
    records = stream_updates()
    await deliver(w.partials.loop, w.partials, records)
    await w.partials.store(commit_due=True)
    merged: dict[int, int] = {}
    await merge_what_was_sent(w, sent, merged)
    # Event time closed window 0 on the partitions carrying updates (window 1 began);
    # the one without any sent a heartbeat: window 0 is merged.
    assert w.counters.partial_windows == CARRYING
    assert w.counters.heartbeats >= 1
    assert w.merged_until() == T0

    # The stream stops. Before the grace of window 1's end has passed on the clock,
    # nothing more closes...
    clock.now += 10 + GRACE - 1
    await w.partials.store(commit_due=True)
    await merge_what_was_sent(w, sent, merged)
    assert w.counters.partial_windows == CARRYING
    assert w.merged_until() == T0
    # ... after it, every partition's window 1 is published and merged, with no new
    # record: the periodic turn of the loop (store) is enough.
    clock.now += 2
    await w.partials.store(commit_due=True)
    assert w.counters.partial_windows == 2 * CARRYING
    await merge_what_was_sent(w, sent, merged)
    assert w.merged_until() == T0 + W
    assert w.counters.windows_timed_out == 0  # every source reported: no timeout
    assert stored_starts(w.settings) == {T0, T0 + W}
    announced = sum(
        row[2] for values in sent.records.values() for v in values for row in wire.decode(v).rows
    )
    assert announced == sum(len(r) for r in records.values())
    # every record of the stream is committable now
    assert {p: o for p, o in w.partials.committable().items() if p in records} == {
        p: len(r) for p, r in records.items()
    }


async def test_idle_time_survives_a_move_of_the_partitions(tmp_path: Path) -> None:
    """A rebalance while the stream is quiet does not start the idle clock over: the
    checkpoint carries how long the partition has been idle."""
    clock = Clock()
    w, sent = worker(tmp_path, clock)
    await assign(w.partials.loop, w.partials, range(PARTITIONS))
    await assign(w.merge.loop, w.merge, range(PARTITIONS))
    records = stream_updates()
    await deliver(w.partials.loop, w.partials, records)
    await w.partials.store(commit_due=True)
    merged: dict[int, int] = {}
    await merge_what_was_sent(w, sent, merged)
    assert w.merged_until() == T0

    clock.now += 10  # quiet, window 1 not closable yet
    await w.partials.store(commit_due=True)
    # The partitions move (a rebalance): saved, dropped, restored from the checkpoint.
    ends = {p: len(records.get(p, [])) for p in range(PARTITIONS)}
    await w.partials.revoke(list(range(PARTITIONS)))
    for p in range(PARTITIONS):
        w.partials.loop.partitions.pop(p)
    await assign(w.partials.loop, w.partials, [p for p in ends if ends[p]], max(ends.values()))
    await assign(w.partials.loop, w.partials, [p for p in ends if not ends[p]])
    assert w.counters.restored_partitions == CARRYING
    clock.now += GRACE + 1  # the grace has passed, counting the idle time before the move
    await w.partials.store(commit_due=True)
    assert w.counters.partial_windows == 2 * CARRYING
    await merge_what_was_sent(w, sent, merged)
    assert w.merged_until() == T0 + W


def test_a_window_a_source_never_reports_is_merged_on_the_timeout() -> None:
    merger = SessionMerger(W)
    row = ["c|a", 64500, 1, 0, 1, 2, 1, 0, 0, 0, 1, [65000], []]
    merger.offer(0, wire.decode(wire.encode_window(0, 2, T0, W, [row])), now=100.0)
    assert merger.ready(now=100.0 + 599, timeout_s=600) == []  # source 1 may still come
    (window,) = merger.ready(now=100.0 + 600, timeout_s=600)
    assert window.start == T0 and not window.complete
    assert window.rows[0]["announcements"] == 1
    # the missing source's partial, arriving after that, is dropped, not merged again
    merger.offer(1, wire.decode(wire.encode_window(1, 2, T0, W, [row])), now=800.0)
    assert merger.ready(now=800.0, timeout_s=600) == [] and merger.duplicates == 1
    assert merger.committable() == 2


async def test_an_open_window_checkpointed_is_progress_not_a_stall(tmp_path: Path) -> None:
    """Live traffic keeps a window open for its 300 s (its records stay uncommitted
    until it closes): the checkpoints that hold them count as progress, so the stall
    check (60 s) does not fail the replica's health every window."""
    clock = Clock()
    w, _ = worker(tmp_path, clock)
    loop = w.partials.loop
    await assign(loop, w.partials, range(PARTITIONS))
    records = {p: r[:5] for p, r in stream_updates().items()}  # all within window 0
    await deliver(loop, w.partials, records)
    for p, r in records.items():
        progress = loop.partitions[p]
        progress.committed = 0  # nothing committed: the window is open
        progress.highwater = len(r) + 3  # and more records wait
        progress.progress_at -= 120  # and the last progress was two minutes ago
    assert w.partials.committable() == {p: 0 for p in records}  # the window is open
    assert len([h for h in loop.health() if "stalled" in h]) == CARRYING

    clock.now += w.settings.session_stats_checkpoint_s + 1
    await w.partials.store(commit_due=True)  # the checkpoint is due: saved
    assert w.counters.checkpoints_saved >= CARRYING
    assert not [h for h in loop.health() if "stalled" in h]
    for p, r in records.items():
        assert loop.partitions[p].stored == len(r) and loop.partitions[p].lag == 3 + len(r)
