"""Two session-stats workers, one killed (SIGKILL) mid-stream: the survivor restores the
dead one's partitions from their fenced Redis checkpoints, and every feature row — the
1-hour sums and prefix counts after the kill included — equals an uninterrupted run's.

Real Redis, the real Kafka-protocol broker, a worker in a process of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
from bgp_orchestrator.flaps.feature_store import offline_dir
from bgp_orchestrator.flaps.features import ENTITY, TIMESTAMP, derive_features
from bgp_orchestrator.flaps.windows import window_counts
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.sessionstats import SessionStatsWorker
from bgp_orchestrator.settings import Settings
from tests.integration.test_detection_flow import wait_for
from tests.integration.test_session_stats import ShiftedClock
from tests.unit.sessionstats.test_partials import T0, W, updates

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 4
WINDOWS = 16  # 80 minutes: the 1-hour features after the kill reach back before it
KILL_AFTER = 9  # windows published before the kill


class Points:
    def __init__(self) -> None:
        self.points: list[MetricPoint] = []

    async def submit(self, points: Sequence[MetricPoint]) -> None:
        self.points.extend(points)


MERGE_TIMEOUT_S = 3600.0


def run_settings(run: str, tmp_path: Path, tag: str) -> Settings:
    return Settings(
        data_dir=tmp_path / tag,
        kafka_topic=f"updates-{run}",
        kafka_dlq_topic=f"dlq-{run}",
        session_stats_group=f"stats-{tag}-{run}",
        session_windows_topic=f"windows-{tag}-{run}",
        session_merge_group=f"merge-{tag}-{run}",
        kafka_partitions=PARTITIONS,
        flap_window_s=W,
        session_stats_checkpoint_s=0.5,
        # run_to_the_end moves the clock 2 windows (600 s) ahead to close the last one;
        # the merge timeout (600 s by default) must not fire on that jump before the
        # quiet partitions' partials arrive: this test is about the restart, not it.
        session_merge_timeout_s=MERGE_TIMEOUT_S,
    )


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BGPO_DATA_DIR": str(settings.data_dir),
            "BGPO_KAFKA_TOPIC": settings.kafka_topic,
            "BGPO_KAFKA_DLQ_TOPIC": settings.kafka_dlq_topic,
            "BGPO_SESSION_STATS_GROUP": settings.session_stats_group,
            "BGPO_SESSION_WINDOWS_TOPIC": settings.session_windows_topic,
            "BGPO_SESSION_MERGE_GROUP": settings.session_merge_group,
            "BGPO_KAFKA_PARTITIONS": str(PARTITIONS),
            "BGPO_FLAP_WINDOW_S": str(W),
            "BGPO_SESSION_STATS_CHECKPOINT_S": "0.5",
            "BGPO_SESSION_MERGE_TIMEOUT_S": str(MERGE_TIMEOUT_S),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
    )
    return env


def stored(settings: Settings) -> pd.DataFrame:
    frame = pd.read_parquet(offline_dir(settings))
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    end = pd.Timestamp(T0 + WINDOWS * W, unit="s", tz="UTC")
    frame = frame[frame[TIMESTAMP] <= end]
    return frame.sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)


async def publish(bootstrap: str, settings: Settings, batch: list[Update]) -> None:
    async with UpdatePublisher(
        bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, PARTITIONS
    ) as publisher:
        await publisher.publish(batch)


async def run_to_the_end(worker: SessionStatsWorker, clock: ShiftedClock, task: Any) -> None:
    """Until every window with updates is handed over (the last one closed by the
    quiet clock)."""

    def merged(until: int) -> Any:
        async def check() -> bool:
            if task.done():
                task.result()
            done = worker.merged_until()
            return len(worker.merge.mergers) == PARTITIONS and done is not None and done >= until

        return check

    async def why() -> str:
        return str(worker.stats())

    await wait_for(merged(T0 + (WINDOWS - 2) * W), 120, why)
    clock.shift = 2 * W
    await wait_for(merged(T0 + (WINDOWS - 1) * W), 60, why)


async def checkpoint_owners(client: Any, settings: Settings) -> dict[str, list[str]]:
    """Per stage, the owner of each partition's checkpoint ("" where none is saved)."""
    out = {}
    for group, topic in (
        (settings.session_stats_group, settings.kafka_topic),
        (settings.session_merge_group, settings.session_windows_topic),
    ):
        store = RedisCheckpoints(client, group, topic)
        owners = []
        for p in range(PARTITIONS):
            data = await client.hgetall(store._key(p))
            owners.append(data.get(b"owner", b"").decode() if b"state" in data else "")
        out[group] = owners
    return out


async def test_a_killed_worker_s_partitions_resume_their_hour_of_features(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    import redis.asyncio as aioredis

    run = uuid.uuid4().hex[:8]
    stream = updates(11, windows=WINDOWS)
    before = [u for u in stream if u.timestamp < T0 + KILL_AFTER * W]
    after = stream[len(before) :]
    pair = run_settings(run, tmp_path, "pair")
    await ensure_topics(kafka_bootstrap, pair.kafka_topic, pair.kafka_dlq_topic, PARTITIONS)
    await publish(kafka_bootstrap, pair, before)

    client = aioredis.from_url(redis_url)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.session_stats_child",
        kafka_bootstrap,
        redis_url,
        "child",
        env=child_env(pair),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    survivor: SessionStatsWorker | None = None
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        # The child alone first: it owns every partition and checkpoints them.
        async def child_checkpointed() -> bool:
            assert child.returncode is None, f"the child worker exited ({child.returncode})"
            owners = await checkpoint_owners(client, pair)
            return all(o.startswith("child-") for os_ in owners.values() for o in os_)

        await wait_for(child_checkpointed, 120)

        # A second worker joins: half the partitions move to it, with their state.
        clock = ShiftedClock()
        survivor = SessionStatsWorker(
            pair,
            Points(),
            kafka_bootstrap,
            name="survivor",
            grace_s=5,
            clock=clock,
            checkpoints=lambda group, topic: RedisCheckpoints(client, group, topic),
        )
        task = asyncio.create_task(survivor.run(stop))
        worker = survivor

        async def shared() -> bool:
            if task.done():
                task.result()
            owners = await checkpoint_owners(client, pair)
            mine = [o for os_ in owners.values() for o in os_ if o.startswith("survivor-")]
            return bool(worker.partials.streams) and bool(worker.merge.mergers) and bool(mine)

        await wait_for(shared, 120)
        assert 0 < len(survivor.partials.streams) < PARTITIONS
        # Let both work a little on their halves, then kill the child without warning.
        await asyncio.sleep(2)
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)
        restored_before_kill = survivor.counters.restored_partitions
        await publish(kafka_bootstrap, pair, after)
        await run_to_the_end(survivor, clock, task)
        # the dead worker's partitions came back from its checkpoints, not from zero
        assert survivor.counters.restored_partitions > restored_before_kill
        assert survivor.counters.log_resets == 0
    finally:
        if child.returncode is None:
            child.kill()
            await asyncio.wait_for(child.wait(), 10)
        stop.set()
        if task is not None:
            await task
        await client.aclose()

    # The same stream, read once by a worker that is never interrupted.
    alone = run_settings(run, tmp_path, "alone")
    clock = ShiftedClock()
    single = SessionStatsWorker(alone, Points(), kafka_bootstrap, grace_s=5, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(single.run(stop))
    try:
        await run_to_the_end(single, clock, task)
    finally:
        stop.set()
        await task

    interrupted, uninterrupted = stored(pair), stored(alone)
    assert len(uninterrupted) > 0
    pd.testing.assert_frame_equal(interrupted, uninterrupted)
    # and both are the offline path's features of the whole stream
    offline = derive_features(pd.DataFrame(window_counts(stream, W)), W)
    offline[TIMESTAMP] = pd.to_datetime(offline[TIMESTAMP], utc=True)
    offline = offline.sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)
    last = offline[TIMESTAMP].max()
    pd.testing.assert_frame_equal(
        uninterrupted[uninterrupted[TIMESTAMP] <= last].reset_index(drop=True), offline
    )
    late = uninterrupted[
        uninterrupted[TIMESTAMP] > pd.Timestamp(T0 + KILL_AFTER * W, unit="s", tz="UTC")
    ]
    assert (late["announcements_1h"] > late["announcements"]).any()  # the hour reaches back
