"""The fitting job's work on real PostgreSQL and a real metric store: a run stores
the trailing detector's anomalies beside the bands', and the API lists them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from bgp_orchestrator.anomaly import repository
from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.multivariate import TRAILING_ENGINE, live_params
from bgp_orchestrator.anomaly.series import TRAILING_METRIC, MetricPoint
from bgp_orchestrator.anomaly.store import open_metric_store
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from jobs.fit_anomalies import Window, chunks, fit_bucket

pytestmark = pytest.mark.integration
UPDATES = "bgpo_session_update_rate"
WITHDRAWALS = "bgpo_session_withdrawal_rate"
HOURS = 10 * 24
STORM = (HOURS - 30, HOURS - 22)  # eight hours of withdrawals on one session


def _points(start: datetime) -> list[MetricPoint]:
    rng = np.random.default_rng(2)
    points = []
    for number in range(4):
        session, asn = f"rrc00|192.0.2.{number}", 64500 + number
        for hour in range(HOURS):
            at = (start + timedelta(hours=hour)).timestamp()
            withdrawals = float(rng.poisson(15))
            updates = float(rng.poisson(200 + 50 * np.sin(2 * np.pi * hour / 24))) + withdrawals
            if number == 1 and STORM[0] <= hour < STORM[1]:
                withdrawals, updates = withdrawals + 3000, updates + 3000
            points.append(MetricPoint(UPDATES, session, asn, at, updates))
            points.append(MetricPoint(WITHDRAWALS, session, asn, at, withdrawals))
    return points


async def test_a_fit_run_stores_trailing_anomalies_the_api_lists(
    database_url: str, tmp_path: Path, db: Database, clean: None
) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, metric_store="parquet")
    async with db.connection() as conn:
        await conn.execute("TRUNCATE anomalies, anomaly_runs RESTART IDENTITY CASCADE")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=HOURS)
    store = open_metric_store(settings)
    await store.write(_points(start))
    params = FitParams()
    trailing = live_params(params)
    async with db.connection() as conn:
        run_id = await repository.start_run(
            conn, engine=params.engine, params={}, data_from=start, data_to=end
        )
    totals = {"series": 0, "anomalies": 0, "trailing": 0}
    try:
        for chunk in chunks(None):
            counts = await fit_bucket(
                store,
                db,
                params,
                Window(start, end, None),
                bucket=chunk["bucket"],
                sessions=None,
                metrics=[UPDATES, WITHDRAWALS],
                bands=0,
                trailing=trailing,
                run_id=run_id,
            )
            for name in totals:
                totals[name] += counts[name]
    finally:
        await store.close()
    assert totals["series"] == 8 and totals["trailing"] >= 1

    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT session, start_at, points, engine, run_id, severity FROM anomalies "
            "WHERE metric = $1",
            TRAILING_METRIC,
        )
        bands = await conn.fetchval(
            "SELECT count(*) FROM anomalies WHERE engine = $1", params.engine
        )
    storm = [r for r in rows if r["session"] == "rrc00|192.0.2.1"]
    assert len(storm) == 1 and storm[0]["start_at"] == start + timedelta(hours=STORM[0])
    assert storm[0]["points"] == STORM[1] - STORM[0]  # the storm did not become the normal
    assert {r["engine"] for r in rows} == {TRAILING_ENGINE}
    assert {r["run_id"] for r in rows} == {run_id}
    assert bands >= 1  # the per-series bands see the storm too, stored beside
    assert totals["anomalies"] == len(rows) + bands

    app = create_app(settings, database=db)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        # a tenant reads the anomalies of its own sessions: noc peers with AS64501 there
        admin = {"X-Role": "platform-admin"}
        r = await client.post("/api/v1/tenants", json={"slug": "noc", "name": "NOC"}, headers=admin)
        assert r.status_code == 201, r.text
        client.headers["X-Tenant"] = "noc"
        assert (await client.post("/api/v1/asns", json={"asn": 64999})).status_code == 201
        r = await client.post(
            "/api/v1/sessions",
            json={
                "local_asn": 64999,
                "peer_asn": 64501,
                "peer_address": "192.0.2.1",
                "interconnect": "pni",
            },
        )
        assert r.status_code == 201, r.text
        listed = await client.get("/api/v1/anomalies", params={"metric": TRAILING_METRIC})
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert {i["engine"] for i in items} == {TRAILING_ENGINE}
        assert {i["session"] for i in items} == {"rrc00|192.0.2.1"}  # its own session only
        one = next(i for i in items if i["session"] == "rrc00|192.0.2.1")
        detail = await client.get(f"/api/v1/anomalies/{one['id']}")
        assert detail.status_code == 200, detail.text
        window = detail.json()["window"]
        assert len(window) > STORM[1] - STORM[0]
        peak = max(window, key=lambda p: p["actual"] or 0)
        assert peak["actual"] > peak["upper"] > peak["expected"]
