"""Anomaly API against real PostgreSQL and a real metric store: VictoriaMetrics
(the embedded daemon) and, separately, the Parquet fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.anomaly.store import open_metric_store
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.local.ports import free_port
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database

pytestmark = pytest.mark.integration
METRIC = "bgpo_session_update_rate"
HOURS = 7 * 24


@pytest.fixture(params=["victoriametrics", "parquet"])
def store_settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Settings:
    if request.param == "parquet":
        return Settings(database_url=database_url, data_dir=tmp_path, metric_store="parquet")
    url = request.getfixturevalue("victoria").url
    return Settings(database_url=database_url, data_dir=tmp_path, victoria_metrics_url=url)


def _series(now: datetime) -> tuple[list[MetricPoint], datetime]:
    """Three sessions: a daily rhythm with one spike, a constant one, a short one."""
    rng = np.random.default_rng(1)
    start = (now - timedelta(hours=HOURS)).replace(minute=0, second=0, microsecond=0)
    points: list[MetricPoint] = []
    spike_at = start + timedelta(hours=HOURS - 20)
    for hour in range(HOURS):
        at = start + timedelta(hours=hour)
        value = 100 + 30 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 2)
        if at == spike_at:
            value += 80
        points.append(MetricPoint(METRIC, "rrc00|192.0.2.1", 64500, at.timestamp(), float(value)))
        points.append(MetricPoint(METRIC, "rrc00|192.0.2.2", 64501, at.timestamp(), 5.0))
        if hour >= HOURS - 30:
            points.append(
                MetricPoint(METRIC, "rrc00|192.0.2.3", 64502, at.timestamp(), 1.0 + hour % 3)
            )
    return points, spike_at


@pytest.fixture
async def api(
    store_settings: Settings, db: Database, clean: None
) -> AsyncIterator[tuple[httpx.AsyncClient, datetime]]:
    async with db.connection() as conn:
        await conn.execute("TRUNCATE anomalies, anomaly_runs RESTART IDENTITY CASCADE")
    points, spike_at = _series(datetime.now(UTC))
    store = open_metric_store(store_settings)
    await store.write(points)
    flush = getattr(store, "flush", None)
    if flush is not None:
        await flush()
    await store.close()
    app = create_app(store_settings, database=db)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        r = await client.post(
            "/api/v1/tenants",
            json={"slug": "noc", "name": "NOC"},
            headers={"X-Role": "platform-admin"},
        )
        assert r.status_code == 201, r.text
        client.headers["X-Tenant"] = "noc"
        # A tenant reads the anomalies of its own sessions: noc peers with AS64500 there.
        r = await client.post("/api/v1/asns", json={"asn": 64999})
        assert r.status_code == 201, r.text
        r = await client.post(
            "/api/v1/sessions",
            json={
                "local_asn": 64999,
                "peer_asn": 64500,
                "peer_address": "192.0.2.1",
                "interconnect": "pni",
            },
        )
        assert r.status_code == 201, r.text
        yield client, spike_at


async def _detect(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    series = [f"{METRIC}/rrc00|192.0.2.{i}" for i in (1, 2, 3, 9)]
    return await client.post(
        "/api/v1/anomalies/detect",
        json={"series": series, **body},
        headers={"X-Role": "platform-admin"},
    )


async def test_detect_stores_anomalies_the_api_lists_and_details(
    api: tuple[httpx.AsyncClient, datetime],
) -> None:
    client, spike_at = api
    r = await _detect(client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fitted"] == 1
    reasons = {s["series"].rsplit(".", 1)[1]: s["reason"] for s in body["skipped"]}
    assert reasons == {"2": "constant", "3": "too-short", "9": "no-data"}
    spikes = [
        a
        for a in body["anomalies"]
        if datetime.fromisoformat(a["start_at"]) <= spike_at <= datetime.fromisoformat(a["end_at"])
    ]
    assert len(spikes) == 1
    spike = spikes[0]
    assert spike["direction"] == "above" and spike["score"] > 10 and spike["severity"] != "low"
    assert spike["session"] == "rrc00|192.0.2.1" and spike["peer_asn"] == 64500

    r = await client.get(f"/api/v1/anomalies/{spike['id']}")
    assert r.status_code == 200, r.text
    detail = r.json()
    window = detail["window"]
    peak = next(p for p in window if datetime.fromisoformat(p["timestamp"]) == spike_at)
    assert peak["actual"] > peak["upper"] > peak["expected"] > peak["lower"]
    assert len(window) > 24

    listed = (await client.get("/api/v1/anomalies", params={"session": "rrc00|192.0.2.1"})).json()
    assert listed["total"] == len(body["anomalies"]) and listed["items"][0]["id"] >= 1
    high = await client.get("/api/v1/anomalies", params={"severity": "critical", "limit": 1})
    assert all(i["severity"] == "critical" for i in high.json()["items"])
    assert high.json()["limit"] == 1
    since = (spike_at + timedelta(hours=1)).isoformat()
    later = (await client.get("/api/v1/anomalies", params={"since": since})).json()
    assert spike["id"] not in [i["id"] for i in later["items"]]
    none = await client.get("/api/v1/anomalies", params={"metric": "bgpo_session_prefixes"})
    assert none.json()["total"] == 0

    summary = (await client.get("/api/v1/anomalies/summary")).json()
    assert summary["total"] == len(body["anomalies"])
    assert summary["top_peers"][0]["peer_asn"] == 64500
    assert sum(summary["by_severity"].values()) == summary["total"]

    # Detecting again updates the same anomalies instead of adding copies.
    again = (await _detect(client)).json()
    assert sorted(a["id"] for a in again["anomalies"]) == sorted(a["id"] for a in body["anomalies"])


async def test_bad_requests_name_the_field(api: tuple[httpx.AsyncClient, datetime]) -> None:
    client, _ = api
    cases = [
        ({"series": ["no-slash"]}, "series"),
        ({"series": ["bgpo_nope/rrc00|192.0.2.1"]}, "series"),
        ({"series": []}, "series"),
        ({"series": [f"{METRIC}/rrc00|192.0.2.1"], "sigma": 0}, "sigma"),
        ({"series": [f"{METRIC}/rrc00|192.0.2.1"], "engine": "arima"}, "engine"),
    ]
    for body, field in cases:
        r = await client.post(
            "/api/v1/anomalies/detect", json=body, headers={"X-Role": "platform-admin"}
        )
        assert r.status_code == 422, (body, r.text)
        assert field in r.text
    r = await client.post(
        "/api/v1/anomalies/detect",
        json={"series": [f"{METRIC}/x|1"]},
        headers={"X-Role": "platform-admin"},
    )
    assert r.status_code == 404 and "series-not-found" in r.text
    assert (await client.get("/api/v1/anomalies/999999")).status_code == 404
    r = await client.get("/api/v1/anomalies", params={"severity": "dire"})
    assert r.status_code == 422 and "severity" in r.text
    r = await client.get("/api/v1/anomalies", params={"metric": "bgpo_x"})
    assert r.status_code == 422 and "metric" in r.text
    r = await client.get(
        "/api/v1/anomalies",
        params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
    )
    assert r.status_code == 422 and "since" in r.text


async def test_detect_with_the_metric_store_down_answers_503(
    database_url: str, tmp_path: Path, db: Database, clean: None
) -> None:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        victoria_metrics_url=f"http://127.0.0.1:{free_port()}",
    )
    app = create_app(settings, database=db)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        r = await client.post(
            "/api/v1/tenants",
            json={"slug": "noc", "name": "NOC"},
            headers={"X-Role": "platform-admin"},
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            "/api/v1/anomalies/detect",
            json={"series": [f"{METRIC}/rrc00|192.0.2.1"]},
            headers={"X-Role": "platform-admin"},
        )
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "metric-store-unavailable"
    assert "VictoriaMetrics" in r.json()["detail"]
