"""The Parquet metric store, choosing the store from the settings, VictoriaMetrics selectors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bgp_orchestrator.anomaly import store_vm
from bgp_orchestrator.anomaly.series import MetricPoint, bucket_of
from bgp_orchestrator.anomaly.store import MetricStoreError, open_metric_store
from bgp_orchestrator.anomaly.store_parquet import ParquetMetricStore
from bgp_orchestrator.anomaly.store_vm import VictoriaMetricsStore, re2_escape, selectors
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.local import victoria
from bgp_orchestrator.local.services import embedded_services, endpoints
from bgp_orchestrator.settings import Settings
from tests.metric_store_checks import (
    BAND,
    BAND_LABELS,
    METRICS,
    SESSIONS,
    base_time,
    check_contract,
    check_many_sessions,
    make_points,
)


def _tree(path: Path) -> list[Path]:
    return list(path.rglob("*"))


async def test_parquet_store_keeps_the_contract(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path / "metrics")
    await check_contract(store, store.flush)
    assert store.describe() == f"Parquet files in {tmp_path / 'metrics'}"
    await store.close()


async def test_parquet_series_are_exact_to_the_range(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path)
    base = base_time()
    await store.write(make_points(base))
    # Band points lie in the first 15 minutes; the others run for 50.
    listed = await store.series(start=base + timedelta(minutes=20), end=base + timedelta(hours=1))
    assert set(listed["metric"]) == set(METRICS)
    assert len(listed) == len(METRICS) * len(SESSIONS)
    assert (await store.series(start=base, end=base + timedelta(hours=1), metrics=[])).empty


async def test_parquet_store_reads_500_sessions(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path)
    await check_many_sessions(store, store.flush)


async def test_parquet_layout_labels_and_atomic_files(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path)
    session = next(iter(SESSIONS))
    t = base_time().timestamp()
    await store.write(
        [
            MetricPoint(BAND, session, 64500, t, 1.0, BAND_LABELS),
            MetricPoint("bgpo_session_prefixes", session, 64500, t, 2.0),
        ]
    )
    files = _tree(tmp_path)
    data = [f for f in files if f.is_file()]
    assert len(data) == 1 and data[0].suffix == ".parquet", files  # no .partial left behind
    assert data[0].parent.name == f"bucket={bucket_of(session):02d}"
    table = pq.read_table(data[0]).to_pylist()
    labels = {row["metric"]: row["labels"] for row in table}
    assert json.loads(labels[BAND]) == dict(BAND_LABELS)
    assert labels["bgpo_session_prefixes"] == ""
    # read() does not return the further labels.
    frame = await store.read(start=base_time(), end=base_time() + timedelta(minutes=1))
    assert list(frame.columns) == ["metric", "session", "peer_asn", "timestamp", "value"]


async def test_parquet_read_opens_only_the_sessions_buckets(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path)
    t = base_time().timestamp()
    await store.write([MetricPoint("bgpo_session_origins", s, 1, t, 1.0) for s in SESSIONS])
    wanted = ["rrc00|192.0.2.1"]
    assert store._files(wanted) == [
        str(f) for f in sorted(store.bucket_dir(bucket_of(wanted[0])).glob("*.parquet"))
    ]
    # A corrupt file in another bucket does not disturb a read of this session.
    other = next(s for s in SESSIONS if bucket_of(s) != bucket_of(wanted[0]))
    next(store.bucket_dir(bucket_of(other)).glob("*.parquet")).write_bytes(b"not parquet")
    frame = await store.read(start=base_time(), end=base_time() + timedelta(1), sessions=wanted)
    assert list(frame["session"]) == wanted
    with pytest.raises(MetricStoreError, match="cannot read points"):
        await store.read(start=base_time(), end=base_time() + timedelta(1))


async def test_parquet_repeated_write_is_read_once(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path)
    t = base_time().timestamp()
    await store.write([MetricPoint("bgpo_session_origins", "a|1", 1, t, 1.0)])
    await store.write([MetricPoint("bgpo_session_origins", "a|1", 1, t, 3.0)])
    frame = await store.read(start=base_time(), end=base_time() + timedelta(1))
    assert list(frame["value"]) == [3.0]


@pytest.mark.parametrize(
    ("point", "problem"),
    [
        (MetricPoint("bad name", "s", 1, 0.0, 1.0), "metric name"),
        (MetricPoint("m", "", 1, 0.0, 1.0), "session is empty"),
        (MetricPoint("m", "s", 1, 0.0, float("nan")), "not a finite"),
        (MetricPoint("m", "s", 1, 0.0, 1.0, (("session", "x"),)), "reserved"),
        (MetricPoint("m", "s", 1, 0.0, 1.0, (("k", ""),)), "empty value"),
    ],
)
async def test_invalid_points_are_refused(tmp_path: Path, point: MetricPoint, problem: str) -> None:
    store = ParquetMetricStore(tmp_path)
    with pytest.raises(MetricStoreError, match=problem) as info:
        await store.write([point])
    assert info.value.code == "invalid-metric-point"
    assert not _tree(tmp_path)


# --- choosing the store --------------------------------------------------------


@pytest.fixture
def binary(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Pretend the victoria-metrics binary is (or is not) installed."""
    found: list[str | None] = ["/usr/bin/victoria-metrics"]
    monkeypatch.setattr(victoria, "victoria_metrics_binary", lambda: found[0])
    return found


def test_configured_url_means_victoria_metrics(tmp_path: Path, binary: list[str | None]) -> None:
    binary[0] = None
    settings = Settings(data_dir=tmp_path, victoria_metrics_url="http://vm.example:8428/")
    store = open_metric_store(settings)
    assert isinstance(store, VictoriaMetricsStore)
    assert store.describe() == "VictoriaMetrics at http://vm.example:8428"
    assert "victoria-metrics" not in [s.name for s in embedded_services(settings)]
    assert endpoints(settings).as_env()["BGPO_VICTORIA_METRICS_URL"] == "http://vm.example:8428"


def test_installed_binary_means_embedded_victoria_metrics(
    tmp_path: Path, binary: list[str | None]
) -> None:
    settings = Settings(data_dir=tmp_path, embedded_victoria_metrics_port=18428)
    store = open_metric_store(settings)
    assert isinstance(store, VictoriaMetricsStore)
    assert store.url == "http://127.0.0.1:18428"
    assert [s.name for s in embedded_services(settings)][-1] == "victoria-metrics"
    env = endpoints(settings).as_env()
    assert env["BGPO_VICTORIA_METRICS_URL"] == "http://127.0.0.1:18428"
    assert "BGPO_METRIC_STORE" not in env


def test_without_binary_parquet_files(tmp_path: Path, binary: list[str | None]) -> None:
    binary[0] = None
    settings = Settings(data_dir=tmp_path)
    store = open_metric_store(settings)
    assert isinstance(store, ParquetMetricStore)
    assert store.directory == tmp_path / "metrics"
    assert "victoria-metrics" not in [s.name for s in embedded_services(settings)]
    env = endpoints(settings).as_env()
    assert env["BGPO_METRIC_STORE"] == "parquet"
    assert "BGPO_VICTORIA_METRICS_URL" not in env
    # What a Serve replica sees with that environment: the same Parquet store.
    replica = Settings(data_dir=tmp_path, metric_store=env["BGPO_METRIC_STORE"])
    assert isinstance(open_metric_store(replica), ParquetMetricStore)


def test_parquet_chosen_explicitly(tmp_path: Path, binary: list[str | None]) -> None:
    settings = Settings(
        data_dir=tmp_path, metric_store="parquet", victoria_metrics_url="http://vm:8428"
    )
    assert isinstance(open_metric_store(settings), ParquetMetricStore)
    assert "victoria-metrics" not in [s.name for s in embedded_services(settings)]


def test_victoriametrics_required_but_missing(tmp_path: Path, binary: list[str | None]) -> None:
    binary[0] = None
    settings = Settings(data_dir=tmp_path, metric_store="victoriametrics")
    with pytest.raises(ConfigurationError, match="BGPO_VICTORIA_METRICS_URL") as info:
        open_metric_store(settings)
    assert info.value.code == "victoria-metrics-missing"


def test_metric_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="BGPO_VICTORIA_METRICS_URL"):
        Settings(victoria_metrics_url="vm:8428")
    with pytest.raises(ValueError, match="metrics_retention"):
        Settings(metrics_retention="90 days")
    with pytest.raises(ValueError, match="BGPO_EMBEDDED_VICTORIA_METRICS_PORT"):
        Settings(embedded_victoria_metrics_port=0)
    assert Settings().metrics_retention == "90d"
    assert Settings().embedded_victoria_metrics_port == 8428


# --- VictoriaMetrics selectors (no server) ---------------------------------------------


def test_selectors_escape_and_chunk_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert re2_escape("lab+x.(a)|10.0.0.1") == r"lab\+x\.\(a\)\|10\.0\.0\.1"
    assert selectors(None, None) == ['{peer_asn=~"[0-9]+",session=~".+"}']
    (one,) = selectors(["m_b", "m_a"], ["a|1", 'q"|2'])
    assert one == r'{__name__=~"m_a|m_b",peer_asn=~"[0-9]+",session=~"a\\|1|q\"\\|2"}'
    monkeypatch.setattr(store_vm, "SESSIONS_PER_SELECTOR", 2)
    assert len(selectors(None, [f"s{i}" for i in range(5)])) == 3


async def test_unreachable_victoria_metrics_is_a_clear_error() -> None:
    store = VictoriaMetricsStore("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(MetricStoreError, match="does not answer") as info:
        await store.write([MetricPoint("m", "s", 1, base_time().timestamp(), 1.0)])
    assert info.value.code == "metric-store-unavailable"
    await store.close()


def _parquet(path: Path) -> list[Path]:
    return [p for p in _tree(path) if p.suffix == ".parquet"]


async def test_parquet_compaction_keeps_every_point_and_the_last_write(tmp_path: Path) -> None:
    store = ParquetMetricStore(tmp_path, compact_interval_s=1e9)
    base = base_time()
    points = make_points(base)
    for i in range(0, len(points), 7):  # many small writes, as the live stats make
        await store.write(points[i : i + 7])
    rewritten = points[0]._replace(value=12345.5)
    await store.write([rewritten])  # a later write of a point wins
    start, end = base - timedelta(hours=1), base + timedelta(hours=2)
    before = await store.read(start=start, end=end)
    files_before = len(_parquet(tmp_path))
    merged = store.compact(min_age_s=0)
    assert merged == files_before
    buckets = {p.parent for p in _parquet(tmp_path)}
    assert len(_parquet(tmp_path)) == len(buckets)  # one file per bucket
    after = await store.read(start=start, end=end)
    assert after.equals(before)
    # a later write still wins over the merged file
    assert 12345.5 in set(after["value"])
    again = rewritten._replace(value=54321.5)
    await store.write([again])
    got = await store.read(start=start, end=end, sessions=[again.session])
    assert 54321.5 in set(got["value"]) and 12345.5 not in set(got["value"])
    assert len(got) == len(before[before["session"] == again.session])
    # a crash after the merged file was written: the inputs, put back, are removed
    bucket = store.bucket_dir(bucket_of(again.session))
    merged_file = next(p for p in _parquet(bucket) if "-m" in p.name)
    leftover = bucket / (merged_file.name.split("-m")[0] + ".parquet")
    pq.write_table(pq.read_table(merged_file), leftover)
    store.compact(min_age_s=3600)  # nothing old enough to merge; the leftover goes
    assert leftover not in _parquet(bucket)
    assert (await store.read(start=start, end=end)).shape[0] == before.shape[0]


async def test_series_reads_and_writes_fall_back_to_points(tmp_path: Path) -> None:
    """A store without read_series/write_series (Parquet) gets them from its
    point reads and writes: the same answer grouped by series."""
    import numpy as np

    from bgp_orchestrator.anomaly.prepare import SeriesFrame
    from bgp_orchestrator.anomaly.store import SeriesPoints, read_series, write_series

    store = ParquetMetricStore(tmp_path)
    metric = "bgpo_session_origins"
    t = base_time()
    stamps = t.timestamp() + 60 * np.arange(5.0)
    await write_series(
        store,
        [
            SeriesPoints(metric, f"ps|10.0.0.{n}", 65000 + n, stamps, stamps * 0 + n)
            for n in range(3)
        ],
    )
    window = {"start": t, "end": t + timedelta(minutes=4)}
    got = await read_series(store, **window, metrics=[metric])
    want = SeriesFrame.of_frame(await store.read(**window, metrics=[metric]))
    assert got.series_ids == want.series_ids and len(got) == 3
    assert list(got.values) == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    assert list(got.peer_asns) == [65000, 65001, 65002]
    assert (got.to_frame()["value"].to_numpy() == got.values).all()
