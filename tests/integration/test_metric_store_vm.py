"""The metric store on a real VictoriaMetrics (the embedded daemon, on a free port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from bgp_orchestrator.anomaly.series import MetricPoint, bucket_of
from bgp_orchestrator.anomaly.store import MetricStoreError, open_metric_store
from bgp_orchestrator.anomaly.store_vm import VictoriaMetricsStore
from bgp_orchestrator.anomaly.writer import BackgroundMetricWriter
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.local.victoria import EmbeddedVictoriaMetrics, victoria_metrics_binary
from bgp_orchestrator.settings import Settings
from tests.conftest import free_port
from tests.metric_store_checks import (
    BAND,
    BAND_LABELS,
    assert_frame,
    base_time,
    check_contract,
    check_many_sessions,
    expected_frame,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        victoria_metrics_binary() is None,
        reason="the victoria-metrics binary is not installed (Debian package "
        "victoria-metrics; `./dev test` installs it as root)",
    ),
]


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, embedded_victoria_metrics_port=free_port())


@pytest.fixture
async def store(victoria: EmbeddedVictoriaMetrics) -> AsyncIterator[VictoriaMetricsStore]:
    vm = VictoriaMetricsStore(victoria.url)
    yield vm
    await vm.close()


async def test_victoria_metrics_store_keeps_the_contract(
    own_victoria: EmbeddedVictoriaMetrics,
) -> None:
    # Its own server: the contract reads every series in a window, and the shared one
    # holds other tests' series of the same hours (a CI run failed on three of them).
    store = VictoriaMetricsStore(own_victoria.url)
    try:
        await check_contract(store, store.flush)
        assert store.describe() == f"VictoriaMetrics at {store.url}"
    finally:
        await store.close()


async def test_victoria_metrics_store_reads_500_sessions(store: VictoriaMetricsStore) -> None:
    await check_many_sessions(store, store.flush)


async def test_more_series_than_victoria_metrics_lists_by_default(
    store: VictoriaMetricsStore,
) -> None:
    """The embedded server lists 80,000 sessions' series (its default stops at 30,000)."""
    t = base_time() - timedelta(hours=5)
    points = [
        MetricPoint(
            "bgpo_session_origins", f"many|10.{i >> 8}.{i & 255}.1", 65000, t.timestamp(), 1.0
        )
        for i in range(30_500)
    ]
    await store.write(points)
    await store.flush()
    listed = await store.series(
        start=t - timedelta(minutes=1),
        end=t + timedelta(minutes=1),
        metrics=["bgpo_session_origins"],
    )
    assert len(listed[listed["session"].str.startswith("many|")]) == 30_500


async def test_further_labels_are_written(store: VictoriaMetricsStore) -> None:
    t = base_time() - timedelta(hours=3)
    await store.write([MetricPoint(BAND, "lbl|10.9.9.9", 65010, t.timestamp(), 4.5, BAND_LABELS)])
    await store.flush()
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{store.url}/api/v1/export", data={"match[]": '{session="lbl|10.9.9.9"}'}
        )
    (line,) = r.content.splitlines()
    assert orjson.loads(line)["metric"] == {
        "__name__": BAND,
        "session": "lbl|10.9.9.9",
        "peer_asn": "65010",
        "bucket": str(bucket_of("lbl|10.9.9.9")),
        "series_metric": "bgpo_session_prefixes",
    }


async def test_a_retried_write_is_stored_once(store: VictoriaMetricsStore) -> None:
    t = base_time() - timedelta(hours=4)
    await store.write([MetricPoint("bgpo_session_origins", "dup|1", 1, t.timestamp(), 1.0)])
    await store.write([MetricPoint("bgpo_session_origins", "dup|1", 1, t.timestamp(), 1.0)])
    await store.flush()
    frame = await store.read(start=t, end=t + timedelta(minutes=1), sessions=["dup|1"])
    assert list(frame["value"]) == [1.0]


def test_embedded_daemon_answers_health_and_keeps_data(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    server = EmbeddedVictoriaMetrics(settings)
    t = base_time()
    point = MetricPoint("bgpo_session_prefixes", "keep|1", 7, t.timestamp(), 12.0)

    async def write() -> None:
        store = open_metric_store(settings)
        assert isinstance(store, VictoriaMetricsStore) and store.url == server.url
        await store.write([point])
        await store.close()

    async def read() -> list[float]:
        store = VictoriaMetricsStore(server.url)
        frame = await store.read(start=t, end=t + timedelta(minutes=1))
        await store.close()
        return list(frame["value"])

    try:
        server.start()
        assert server.healthy() and server.running()
        pid = server.pid()
        server.start()  # a no-op when running
        assert server.pid() == pid
        other = EmbeddedVictoriaMetrics(_settings(tmp_path / "other"))
        other.port = server.port
        with pytest.raises(ConfigurationError, match="BGPO_EMBEDDED_VICTORIA_METRICS_PORT"):
            other.start()
        asyncio.run(write())
        server.stop()  # SIGTERM: VictoriaMetrics flushes what it holds
        assert server.pid() is None and not server.running()
        server.start()
        assert asyncio.run(read()) == [12.0]
        assert (tmp_path / "victoria-metrics").is_dir()
        assert server.describe()["retention"] == "90d"
    finally:
        server.stop()


async def test_writer_retries_until_victoria_metrics_starts(tmp_path: Path) -> None:
    """Points submitted while VictoriaMetrics is down are all stored once it is up."""
    server = EmbeddedVictoriaMetrics(_settings(tmp_path))
    store = VictoriaMetricsStore(server.url, timeout_s=2)
    writer = BackgroundMetricWriter(
        store, batch_size=40, linger_s=0.05, initial_backoff_s=0.05, max_backoff_s=0.2
    )
    base = base_time() - timedelta(hours=1)
    points = [
        MetricPoint("bgpo_session_update_rate", f"w|10.1.0.{i % 25}", 65000 + i % 25,
                    base.timestamp() + (i // 25) * 60, float(i))
        for i in range(300)
    ]  # fmt: skip
    writer.start()
    try:
        await writer.submit(points)
        deadline = asyncio.get_running_loop().time() + 10
        while writer.retries < 3:
            assert asyncio.get_running_loop().time() < deadline, "the writer did not retry"
            await asyncio.sleep(0.05)
        assert writer.written == 0 and writer.pending == 300
        with pytest.raises(MetricStoreError, match="does not answer"):
            await store.write(points[:1])
        await asyncio.to_thread(server.start)
        await writer.close(timeout=30)
        assert writer.written == 300 and writer.pending == 0
        await store.flush()
        end = base + timedelta(minutes=12)
        assert_frame(await store.read(start=base, end=end), expected_frame(points, base, end))
    finally:
        await store.close()
        await asyncio.to_thread(server.stop)


async def test_series_reads_and_writes_match_the_point_ones(store: VictoriaMetricsStore) -> None:
    """read_series (the fitting job's read: whole series, no row per point) answers
    what read answers grouped by series; write_series stores what write would."""
    import numpy as np

    from bgp_orchestrator.anomaly.prepare import SeriesFrame
    from bgp_orchestrator.anomaly.store import SeriesPoints, read_series, write_series

    t = base_time() - timedelta(hours=6)
    points = [
        MetricPoint(metric, f"rs|10.0.0.{n}", 65100 + n, t.timestamp() + 60 * k, n + k + 0.5)
        for n in range(5)
        for metric in ("bgpo_session_origins", "bgpo_session_prefixes")
        for k in range(30)
    ]
    # a peer ASN that changed mid-series: two series in VictoriaMetrics, one for us
    points += [
        MetricPoint(
            "bgpo_session_origins", "rs|10.0.0.9", 64999 + (k >= 10), t.timestamp() + 60 * k, k
        )
        for k in range(20)
    ]
    await store.write(points)
    stamps = t.timestamp() + 60 * np.arange(4.0)
    await write_series(
        store,
        [SeriesPoints(BAND, "rs|10.0.0.1", 65101, stamps, np.arange(4.0) * 2, BAND_LABELS)],
    )
    await store.flush()
    window = {"start": t + timedelta(minutes=3), "end": t + timedelta(minutes=25)}
    sessions = [f"rs|10.0.0.{n}" for n in (*range(5), 9)]
    metrics = ["bgpo_session_origins", "bgpo_session_prefixes"]
    fast = await read_series(store, **window, metrics=metrics, sessions=sessions)
    slow = SeriesFrame.of_frame(await store.read(**window, metrics=metrics, sessions=sessions))
    assert fast.series_ids == slow.series_ids and len(fast) == 11
    assert (fast.peer_asns == slow.peer_asns).all() and (fast.codes == slow.codes).all()
    assert (fast.timestamps == slow.timestamps).all() and (fast.values == slow.values).all()
    assert fast.peer_asns[fast.series_ids.index("bgpo_session_origins/rs|10.0.0.9")] == 64999
    band = await store.read(start=t, end=t + timedelta(hours=1), metrics=[BAND])
    band = band[band["session"] == "rs|10.0.0.1"]
    assert list(band["value"]) == [0.0, 2.0, 4.0, 6.0]
    empty = await read_series(store, **window, metrics=metrics, sessions=["rs|none"])
    assert len(empty) == 0
