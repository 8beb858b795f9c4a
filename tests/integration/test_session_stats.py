"""Live session stats against the real Kafka-protocol broker (Tansu) and Redis: updates in,
feature rows in the offline store (and, materialized, in Redis), metric points out,
bad records in the dead-letter topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bgp_orchestrator.anomaly.points import (
    window_points,
)
from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps import materialization
from bgp_orchestrator.flaps.feature_store import offline_dir, online_features, open_store
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, TIMESTAMP, derive_features
from bgp_orchestrator.flaps.windows import window_counts
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.sessionstats import SessionStatsWorker
from bgp_orchestrator.settings import Settings
from tests.integration.test_detection_flow import read_dead_letters, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

W = 300
# An hour ago: the online store serves features younger than its TTL (a day) only.
T0 = (int(time.time()) // W - 12) * W
PARTITIONS = 4


class MemoryPoints:
    """The metric writer's interface, in memory."""

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []
        self.calls = 0

    async def submit(self, points: Sequence[MetricPoint]) -> None:
        self.calls += 1
        self.points.extend(points)


class ShiftedClock:
    """The monotonic clock, moved forward on demand (a quiet stream without the wait)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.shift


def stream_of(collector: str) -> list[Update]:
    """Three sessions over windows 0-3: routes, path changes, a flap, a new session."""
    out: list[Update] = []

    def add(kind: Kind, t: float, peer: int, prefix: str = "", path: tuple[int, ...] = ()) -> None:
        out.append(
            Update(kind, T0 + t, f"192.0.2.{peer}", 64500 + peer, prefix, path, collector=collector)
        )

    for peer in (1, 2):
        for i in range(20):
            add(Kind.ANNOUNCE, 1 + i, peer, f"10.{peer}.{i}.0/24", (64500 + peer, 100 + i % 3))
    for i in range(5):  # window 1: path changes and withdrawals of peer 1
        add(Kind.ANNOUNCE, W + 10 + i, 1, f"10.1.{i}.0/24", (64501, 7, 100 + i % 3))
        add(Kind.WITHDRAW, W + 20 + i, 1, f"10.1.{10 + i}.0/24")
    add(Kind.PEER_DOWN, 2 * W + 5, 2)  # window 2: peer 2 flaps (copied to every partition)
    add(Kind.PEER_UP, 2 * W + 60, 2)
    for i in range(3):
        add(Kind.ANNOUNCE, 2 * W + 70 + i, 2, f"10.2.{i}.0/24", (64502, 5))
    add(Kind.ANNOUNCE, 2 * W + 80, 3, "10.3.0.0/24", (64503, 9, 9))  # a new session
    add(Kind.ANNOUNCE, 3 * W + 2, 3, "10.3.1.0/24", (64503, 11))  # window 3 starts
    return sorted(out, key=lambda u: u.timestamp)


def _stored(settings: Settings) -> pd.DataFrame:
    frame = pd.read_parquet(offline_dir(settings))
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    return frame.sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)


def _point_key(p: MetricPoint) -> tuple[str, str, float]:
    return (p.metric, p.session, p.timestamp)


async def published_run(
    kafka_bootstrap: str, tmp_path: Path, **settings_: Any
) -> tuple[Settings, int, str, list[Update]]:
    """Settings with topics and a group of their own, and the test stream published
    to them: (settings, partitions, run id, updates)."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        data_dir=tmp_path,
        kafka_topic=f"updates-{run}",
        kafka_dlq_topic=f"dlq-{run}",
        session_stats_group=f"stats-{run}",
        session_windows_topic=f"windows-{run}",
        session_merge_group=f"merge-{run}",
        kafka_partitions=PARTITIONS,
        flap_window_s=W,
        **settings_,
    )
    partitions = await ensure_topics(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, PARTITIONS
    )
    updates = stream_of(f"rrc-{run}")
    async with UpdatePublisher(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, partitions
    ) as publisher:
        await publisher.publish(updates)
    return settings, partitions, run, updates


async def test_windows_become_feature_rows_and_metric_points(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiokafka import AIOKafkaProducer

    settings, partitions, run, updates = await published_run(
        kafka_bootstrap, tmp_path, redis_url=redis_url
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka_topic, b"\x00not msgpack", partition=0)
        bad_time: Any = "yesterday"
        bad = updates[0]._replace(timestamp=bad_time)
        await producer.send_and_wait(settings.kafka_topic, codec.encode_batch([bad]), partition=1)
    finally:
        await producer.stop()

    sink = MemoryPoints()
    clock = ShiftedClock()
    worker = SessionStatsWorker(
        settings, sink, kafka_bootstrap, name=f"stats-{run}", grace_s=5, clock=clock
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    def progress(windows: int) -> Any:
        async def check() -> bool:
            if task.done():
                task.result()
            done = worker.merged_until()
            return done is not None and done >= T0 + (windows - 1) * W

        return check

    async def why() -> str:
        return str(worker.stats())

    try:
        # Event time closes windows 0-2 (the stream reached window 3 plus the grace:
        # once caught up, the event clock runs on from the newest update).
        await wait_for(progress(3), 90, why)
        assert worker.merged_until() == T0 + 2 * W, why
        # Then the stream is quiet: the clock closes window 3 and an empty window 4.
        clock.shift = 2 * W
        await wait_for(progress(5), 30, why)
    finally:
        stop.set()
        await task

    worker.stats()  # brings the counters up to date
    stats = worker.counters
    assert stats.windows_closed == 5 * PARTITIONS and stats.last_window_start == T0 + 4 * W
    # session events are copied to every partition: counted there, merged once
    assert stats.updates == len(updates) + 2 * (PARTITIONS - 1)
    assert 5 <= stats.partial_windows <= 5 * PARTITIONS  # from each partition's first window
    assert stats.late_updates == 0
    assert stats.dead_letters == {"malformed-record": 1, "invalid-update": 1}

    # Feature rows: a file per window and session-windows partition holding sessions,
    # equal to the offline path's for windows 0-3.
    files = sorted(p.name for p in offline_dir(settings).glob("*.parquet"))
    merge_group = settings.session_merge_group
    assert {int(name.split("-")[1]) for name in files} == {T0 + i * W for i in range(5)}
    assert all(name.startswith("live-") and f"-{merge_group}-p" in name for name in files)
    group = settings.session_stats_group
    stored = _stored(settings)
    assert list(stored.columns) == [ENTITY, TIMESTAMP, *FEATURES]
    assert stats.rows_written == len(stored) == 2 + 2 + 3 + 3 + 3
    expected = derive_features(pd.DataFrame(window_counts(updates, W)), W)
    expected[TIMESTAMP] = pd.to_datetime(expected[TIMESTAMP], utc=True)
    expected = expected.sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)
    four = stored[stored[TIMESTAMP] <= expected[TIMESTAMP].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(four, expected)
    peer2 = stored[stored[ENTITY].str.endswith("192.0.2.2")].set_index(TIMESTAMP)
    flap_end = pd.Timestamp(T0 + 3 * W, unit="s", tz="UTC")
    assert peer2.loc[flap_end, "state_changes_1h"] == 2  # one down and one up, not four
    assert peer2.loc[flap_end, "time_since_last_flap_s"] == 0
    quiet = stored[stored[TIMESTAMP] == pd.Timestamp(T0 + 5 * W, unit="s", tz="UTC")]
    assert len(quiet) == 3 and (quiet["announcements"] == 0).all()

    # Metric points: four per session and window, stamped with the window's end.
    rows = window_counts(updates, W)
    want = sorted(window_points(rows, W), key=_point_key)
    got = sorted(sink.points, key=_point_key)
    assert [p for p in got if p.timestamp <= T0 + 4 * W] == want
    assert len(got) == len(want) + 4 * 3  # the quiet window 4

    # Everything was handed over: the group's offsets are at the end of every partition.
    from aiokafka import AIOKafkaConsumer, TopicPartition

    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    await reader.start()
    try:
        tps = [TopicPartition(settings.kafka_topic, p) for p in range(partitions)]
        ends = await reader.end_offsets(tps)
        assert {tp.partition: await reader.committed(tp) for tp in tps} == {
            tp.partition: ends[tp] for tp in tps
        }
    finally:
        await reader.stop()

    letters = await read_dead_letters(kafka_bootstrap, settings.kafka_dlq_topic, 2)
    by_code = {letter.code: letter for letter in letters}
    assert by_code["malformed-record"].position.startswith(f"{settings.kafka_topic}/0@")
    assert "yesterday" in by_code["invalid-update"].reason

    # The scheduled materialization moves the newest rows into Redis.
    project = f"stats_{run}"
    original = open_store
    monkeypatch.setattr(materialization, "open_store", lambda s, url: original(s, url, project))
    end = datetime.fromtimestamp(T0 + 5 * W + 1, UTC)
    done = await asyncio.to_thread(materialization.run, settings, redis_url, end)
    assert done.sessions == 3
    store = open_store(settings, redis_url, project)
    sessions = sorted(stored[ENTITY].unique())
    online = await asyncio.to_thread(online_features, store, sessions)
    newest = stored[stored[TIMESTAMP] == stored[TIMESTAMP].max()].set_index(ENTITY)
    for session in sessions:
        assert online[session]["prefix_count"] == pytest.approx(newest.loc[session, "prefix_count"])
        assert online[session]["announcements_1h"] == pytest.approx(
            newest.loc[session, "announcements_1h"]
        )
