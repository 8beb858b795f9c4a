"""BackgroundMetricWriter: batching, linger, back-pressure, retries, close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import pytest

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.anomaly.store import MetricStoreError, empty_frame, finish_series
from bgp_orchestrator.anomaly.writer import BackgroundMetricWriter

pytestmark = pytest.mark.timeout(30)


class FakeStore:
    """Keeps batches in memory; fails while ``down`` is set; may block writes on a gate."""

    def __init__(self) -> None:
        self.batches: list[list[MetricPoint]] = []
        self.down = False
        self.attempts = 0
        self.gate: asyncio.Event | None = None

    async def write(self, points: Sequence[MetricPoint]) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise MetricStoreError("metric-store-unavailable", "the fake store is down")
        self.batches.append(list(points))

    async def read(
        self,
        *,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        return empty_frame()

    async def series(
        self, *, start: datetime, end: datetime, metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        return finish_series([])

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return "memory"

    @property
    def points(self) -> list[MetricPoint]:
        return [p for batch in self.batches for p in batch]


def pts(n: int, start: int = 0) -> list[MetricPoint]:
    return [
        MetricPoint("bgpo_session_prefixes", f"c|10.0.0.{i % 200}", 1, 1e9 + i, float(i))
        for i in range(start, start + n)
    ]


async def test_full_batches_go_at_once_the_rest_after_linger() -> None:
    store = FakeStore()
    writer = BackgroundMetricWriter(store, batch_size=100, linger_s=0.3)
    writer.start()
    await writer.submit(pts(250))
    await asyncio.sleep(0.1)
    assert [len(b) for b in store.batches] == [100, 100]  # no waiting for full batches
    assert writer.pending == 50
    await asyncio.sleep(0.4)
    assert [len(b) for b in store.batches] == [100, 100, 50]  # the rest after linger_s
    assert store.points == pts(250)  # in order
    await writer.close()
    stats = writer.stats()
    assert (stats.written, stats.pending, stats.batches, stats.retries) == (250, 0, 3, 0)


async def test_submit_waits_when_the_queue_is_full() -> None:
    store = FakeStore()
    store.gate = asyncio.Event()  # the store hangs: nothing leaves the queue
    writer = BackgroundMetricWriter(store, batch_size=10, linger_s=0, max_pending=30)
    writer.start()
    await writer.submit(pts(10))
    await asyncio.sleep(0.05)  # the first batch is in flight (held at the gate)
    await writer.submit(pts(30, 10))  # fills the queue exactly
    blocked = asyncio.create_task(writer.submit(pts(5, 40)))
    await asyncio.sleep(0.1)
    assert not blocked.done(), "submit must wait for room, not drop or grow the queue"
    assert writer.pending == 40
    store.gate.set()
    await asyncio.wait_for(blocked, 5)
    await writer.close(timeout=5)
    assert store.points == pts(45)


async def test_failed_writes_are_retried_with_backoff_and_nothing_is_lost() -> None:
    store = FakeStore()
    store.down = True
    writer = BackgroundMetricWriter(
        store, batch_size=20, linger_s=0.01, initial_backoff_s=0.01, max_backoff_s=0.04
    )
    writer.start()
    await writer.submit(pts(50))
    await asyncio.sleep(0.4)
    assert store.batches == []
    assert writer.retries >= 5  # capped at 0.04 s, so it keeps trying
    assert writer.pending == 50
    assert "fake store is down" in writer.stats().last_error
    store.down = False
    await writer.close(timeout=5)
    assert store.points == pts(50)
    assert writer.written == 50 and writer.pending == 0


async def test_backoff_doubles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore()
    store.down = True
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 6:
            store.down = False
        await real_sleep(0)

    writer = BackgroundMetricWriter(
        store, batch_size=5, linger_s=0, initial_backoff_s=0.5, max_backoff_s=3.0
    )
    writer.start()
    await writer.submit(pts(5))
    monkeypatch.setattr(asyncio, "sleep", sleep)
    try:
        await writer.close(timeout=5)
    finally:
        monkeypatch.undo()
    assert delays[:6] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert writer.written == 5


async def test_close_flushes_the_queue_before_linger() -> None:
    store = FakeStore()
    writer = BackgroundMetricWriter(store, batch_size=1000, linger_s=60)
    writer.start()
    await writer.submit(pts(7))
    await asyncio.wait_for(writer.close(timeout=5), 2)  # does not wait out the linger
    assert store.points == pts(7)


async def test_close_says_how_many_points_were_not_stored() -> None:
    store = FakeStore()
    store.down = True
    writer = BackgroundMetricWriter(store, batch_size=10, linger_s=0, initial_backoff_s=0.01)
    writer.start()
    await writer.submit(pts(25))
    with pytest.raises(MetricStoreError, match="25 metric points could not be stored") as info:
        await writer.close(timeout=0.2)
    assert info.value.code == "metric-writer-close-timeout"
    assert info.value.details["pending"] == 25
    with pytest.raises(MetricStoreError, match="closed"):
        await writer.submit(pts(1))


async def test_invalid_points_are_refused_at_submit() -> None:
    writer = BackgroundMetricWriter(FakeStore())
    writer.start()
    bad = MetricPoint("bgpo_session_prefixes", "s", 1, 1e9, float("inf"))
    with pytest.raises(MetricStoreError, match="finite") as info:
        await writer.submit([*pts(3), bad])
    assert info.value.code == "invalid-metric-point"
    assert writer.pending == 0
    await writer.close()


async def test_submit_before_start_is_an_error() -> None:
    writer = BackgroundMetricWriter(FakeStore())
    with pytest.raises(MetricStoreError, match="start"):
        await writer.submit(pts(1))


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        BackgroundMetricWriter(FakeStore(), batch_size=0)
    with pytest.raises(ValueError, match="backoff"):
        BackgroundMetricWriter(FakeStore(), initial_backoff_s=5, max_backoff_s=1)
