"""Flap prediction against real PostgreSQL and Redis: Feast materialization into
Redis, the features and predict endpoints, the registry, and model swaps."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import redis.asyncio as aioredis
import xgboost

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.api.ml_schemas import PredictionsOut
from bgp_orchestrator.flaps import materialization, registry
from bgp_orchestrator.flaps.bootstrap import starter_simulation
from bgp_orchestrator.flaps.dataset import simulated
from bgp_orchestrator.flaps.feature_store import open_store, write_offline
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, LABEL, TIMESTAMP
from bgp_orchestrator.flaps.predictor import MATERIALIZED_KEY, SESSIONS_KEY, FlapPredictor
from bgp_orchestrator.flaps.release import release
from bgp_orchestrator.flaps.training import DEFAULT_PARAMS, LabelSpec, time_split, xy
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database

pytestmark = pytest.mark.integration
HEADERS = {"X-Tenant": "flaps"}
OTHER = {"X-Tenant": "other"}
PLATFORM = {"X-Role": "platform-admin"}


@pytest.fixture
async def env(
    database_url: str, redis_url: str, tmp_path: Path, db: Database, clean: None
) -> AsyncIterator[dict[str, Any]]:
    settings = Settings(database_url=database_url, redis_url=redis_url, data_dir=tmp_path)
    async with db.connection() as conn:
        await conn.execute("TRUNCATE flap_models RESTART IDENTITY CASCADE")
    sim = starter_simulation(settings)
    sim = type(sim)(sessions=300, windows=24, window_s=sim.window_s, start=sim.start, seed=2)
    frame = simulated(sim, LabelSpec())
    write_offline(settings, frame, "test")
    project = f"t{secrets.token_hex(4)}"
    redis = aioredis.from_url(redis_url)
    await redis.delete(SESSIONS_KEY, MATERIALIZED_KEY)
    yield {"settings": settings, "frame": frame, "project": project, "redis": redis}
    await redis.delete(SESSIONS_KEY, MATERIALIZED_KEY)
    await redis.aclose()


async def _tenant(c: httpx.AsyncClient, slug: str, asn: int, sessions: list[str]) -> None:
    """A tenant whose peering sessions are those of the flap-model ids ``sessions``
    (``collector|peer address``)."""
    r = await c.post("/api/v1/tenants", json={"slug": slug, "name": slug}, headers=PLATFORM)
    assert r.status_code == 201, r.text
    headers = {"X-Tenant": slug}
    r = await c.post("/api/v1/asns", json={"asn": asn}, headers=headers)
    assert r.status_code == 201, r.text
    for i, sid in enumerate(sessions):
        r = await c.post(
            "/api/v1/sessions",
            json={
                "local_asn": asn,
                "peer_asn": 65_000 + i,
                "peer_address": sid.rpartition("|")[2],
                "interconnect": "pni",
            },
            headers=headers,
        )
        assert r.status_code == 201, r.text


def _latest(frame: pd.DataFrame, sid: str) -> dict[str, float]:
    row = frame[frame[ENTITY] == sid].sort_values(TIMESTAMP).iloc[-1]
    return {n: float(row[n]) for n in FEATURES}


async def _train(settings: Settings, frame: pd.DataFrame, rounds: int = 20) -> registry.ModelRecord:
    labelled = frame[frame[LABEL].notna()].reset_index(drop=True)
    split = time_split(labelled[TIMESTAMP])
    matrix, labels = xy(split.part(labelled, "train"))
    booster = xgboost.train(
        {**DEFAULT_PARAMS, "nthread": 1}, xgboost.DMatrix(matrix, label=labels), rounds
    )
    done = await release(
        booster,
        split.part(labelled, "test"),
        settings=settings,
        model_store=settings.model_store_uri,
        params={"rounds": rounds},
        data_from=split.first.to_pydatetime(),
        data_to=split.last.to_pydatetime(),
        training_rows=len(matrix),
        activate=False,
    )
    return done.record


def _materialize(env: dict[str, Any], redis_url: str) -> materialization.Materialized:
    import bgp_orchestrator.flaps.materialization as m

    original = m.open_store
    m.open_store = lambda s, url: original(s, url, env["project"])  # type: ignore[assignment]
    try:
        return m.run(env["settings"], redis_url)
    finally:
        m.open_store = original  # type: ignore[assignment]


async def test_materialization_fills_redis_and_the_api_serves_it(
    env: dict[str, Any], redis_url: str, db: Database
) -> None:
    done = await asyncio.to_thread(_materialize, env, redis_url)
    assert done.sessions == 300
    redis = env["redis"]
    assert await redis.scard(SESSIONS_KEY) == 300
    assert datetime.fromisoformat((await redis.get(MATERIALIZED_KEY)).decode()) == done.end
    assert await redis.dbsize() > 300  # Feast's own keys, one hash per session

    settings = env["settings"]
    app = create_app(settings, database=db)
    app.state.feature_store = open_store(settings, redis_url, env["project"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        frame = env["frame"]
        known = sorted(frame[ENTITY].unique())[:2]
        theirs = sorted(frame[ENTITY].unique())[2]
        await _tenant(c, "flaps", 64500, [*known, "nowhere|192.0.2.9"])
        await _tenant(c, "other", 64501, [theirs])
        r = await c.post(
            "/api/v1/features/serve",
            json={"sessions": [*known, "nowhere|192.0.2.9"]},
            headers=HEADERS,
        )
        assert r.status_code == 200, r.text
        body = r.json()["sessions"]
        for sid, item in zip(known, body[:2], strict=True):
            assert item["found"] is True
            assert item["features"] == pytest.approx(_latest(frame, sid), rel=1e-6)
        assert body[2] == {
            "session_id": "nowhere|192.0.2.9",
            "features": dict.fromkeys(FEATURES),
            "found": False,
        }
        assert r.json()["not_found"] == []

        # Another tenant's session: 404 alone, listed (and not read) in a batch, and
        # the same answer as for a session nobody has.
        for sid in (known[0], "nowhere|198.51.100.99"):
            r = await c.post("/api/v1/features/serve", json={"sessions": [sid]}, headers=OTHER)
            assert r.status_code == 404, r.text
            assert r.json()["code"] == "session-not-found"
            assert r.json()["detail"] == f"no session {sid!r} among your peering sessions"
        r = await c.post(
            "/api/v1/features/serve", json={"sessions": [theirs, *known]}, headers=OTHER
        )
        assert r.status_code == 200, r.text
        assert [s["session_id"] for s in r.json()["sessions"]] == [theirs]
        assert r.json()["not_found"] == known
        r = await c.post("/api/v1/features/serve", json={"sessions": known}, headers=OTHER)
        assert r.status_code == 404 and r.json()["code"] == "session-not-found"
        # The platform administrator (of no tenant) reads any session.
        r = await c.post(
            "/api/v1/features/serve", json={"sessions": [theirs, *known]}, headers=PLATFORM
        )
        assert r.status_code == 200, r.text
        assert all(s["found"] for s in r.json()["sessions"]) and r.json()["not_found"] == []
        r = await c.post("/api/v1/features/serve", json={"sessions": []}, headers=HEADERS)
        assert r.status_code == 422 and "sessions" in r.text
        r = await c.post("/api/v1/features/serve", json={"sessions": ["a b"]}, headers=HEADERS)
        assert r.status_code == 422 and "sessions" in r.text


async def test_predictions_model_swaps_and_a_model_that_fails(
    env: dict[str, Any], redis_url: str, db: Database, tmp_path: Path
) -> None:
    settings: Settings = env["settings"]
    await asyncio.to_thread(_materialize, env, redis_url)
    first = await _train(settings, env["frame"], rounds=10)
    second = await _train(settings, env["frame"], rounds=30)
    predictor = FlapPredictor(
        open_store(settings, redis_url, env["project"]), tmp_path / "cache", redis=env["redis"]
    )
    app = create_app(settings, database=db)
    app.state.predictor = predictor
    known = sorted(env["frame"][ENTITY].unique())[:3]
    theirs = sorted(env["frame"][ENTITY].unique())[3]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await _tenant(c, "flaps", 64500, [*known, "x|192.0.2.1"])
        await _tenant(c, "other", 64501, [theirs])
        # Nothing active yet: a clear 503, not a crash.
        r = await c.post("/api/v1/ml/predict", json={"sessions": known[:1]}, headers=HEADERS)
        assert r.status_code == 503 and r.json()["code"] == "no-model"

        r = await c.post(
            f"/api/v1/ml/models/{first.version}/activate",
            headers={**HEADERS, "X-Role": "platform-admin"},
        )
        assert r.status_code == 200 and r.json()["active"] is True
        async with db.connection() as conn:
            assert await predictor.load(conn, None) is True
        assert await predictor.refresh_features() is True
        assert predictor.status.cached_sessions == 300

        r = await c.post("/api/v1/ml/predict", json={"sessions": known}, headers=HEADERS)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        PredictionsOut.model_validate_json(r.content)  # encoded directly: still the schema
        answers = r.json()["predictions"]
        assert [a["session_id"] for a in answers] == known
        assert all(
            0 <= a["probability"] <= 1 and a["model_version"] == first.version for a in answers
        )
        assert answers[0]["features"] == pytest.approx(_latest(env["frame"], known[0]), rel=1e-6)

        # An own session the model has no features for (its peer address is one of the
        # tenant's, seen by no collector yet).
        r = await c.post("/api/v1/ml/predict", json={"sessions": ["x|192.0.2.1"]}, headers=HEADERS)
        assert r.status_code == 404 and "unknown session" in r.json()["detail"]
        r = await c.post(
            "/api/v1/ml/predict", json={"sessions": [known[0], "x|192.0.2.1"]}, headers=HEADERS
        )
        assert r.status_code == 200
        PredictionsOut.model_validate_json(r.content)
        assert r.json()["predictions"][1]["error"].startswith("unknown session")

        # Another tenant's sessions are never predicted: 404 alone (the answer of a
        # session nobody has), listed in not_found in a batch.
        for sid in (known[0], "x|198.51.100.99"):
            r = await c.post("/api/v1/ml/predict", json={"sessions": [sid]}, headers=OTHER)
            assert r.status_code == 404, r.text
            assert r.json()["code"] == "session-not-found"
            assert r.json()["detail"] == f"no session {sid!r} among your peering sessions"
        r = await c.post("/api/v1/ml/predict", json={"sessions": [*known, theirs]}, headers=OTHER)
        assert r.status_code == 200, r.text
        PredictionsOut.model_validate_json(r.content)
        assert [a["session_id"] for a in r.json()["predictions"]] == [theirs]
        assert r.json()["not_found"] == known
        r = await c.post("/api/v1/ml/predict", json={"sessions": known}, headers=OTHER)
        assert r.status_code == 404 and r.json()["code"] == "session-not-found"
        assert "none of the 3 sessions" in r.json()["detail"]
        # The platform administrator (of no tenant) reads any session.
        r = await c.post(
            "/api/v1/ml/predict", json={"sessions": [*known, theirs]}, headers=PLATFORM
        )
        assert r.status_code == 200, r.text
        assert [a["probability"] is not None for a in r.json()["predictions"]] == [True] * 4

        # Up to 10,000 sessions a request: the tenant's are predicted, the rest listed.
        many = [*known, *(f"x|172.16.{i >> 8}.{i & 255}" for i in range(9_997))]
        r = await c.post("/api/v1/ml/predict", json={"sessions": many}, headers=HEADERS)
        assert r.status_code == 200
        assert [a["session_id"] for a in r.json()["predictions"]] == known
        assert r.json()["not_found"] == many[3:]
        r = await c.post("/api/v1/ml/predict", json={"sessions": many}, headers=PLATFORM)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 10_000
        r = await c.post(
            "/api/v1/ml/predict", json={"sessions": [*many, "x|192.0.2.9"]}, headers=HEADERS
        )
        assert r.status_code == 422 and "sessions" in r.text
        r = await c.post("/api/v1/ml/predict", json={"sessions": ["a\tb"]}, headers=HEADERS)
        assert r.status_code == 422 and "no spaces" in r.text

        # Activate the second model: the predictor swaps on its next poll.
        await c.post(
            f"/api/v1/ml/models/{second.version}/activate",
            headers={**HEADERS, "X-Role": "platform-admin"},
        )
        async with db.connection() as conn:
            assert await predictor.load(conn, None) is True
        r = await c.post("/api/v1/ml/predict", json={"sessions": known[:1]}, headers=HEADERS)
        assert r.json()["predictions"][0]["model_version"] == second.version

        # A broken artifact is registered and activated: the predictor keeps v2.
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / registry.MODEL_FILE).write_bytes(b"not an onnx model")
        async with db.connection() as conn:
            bad = await registry.register(
                conn,
                features=FEATURES,
                metrics={},
                params={},
                data_from=datetime.now(UTC),
                data_to=datetime.now(UTC),
                training_rows=0,
                artifact_uri=str(broken),
                onnx_max_diff=0.0,
            )
            await registry.activate(conn, bad.version)
            assert await predictor.load(conn, None) is False
        assert f"model v{bad.version} not loaded" in (predictor.status.last_error or "")
        r = await c.post("/api/v1/ml/predict", json={"sessions": known[:1]}, headers=HEADERS)
        assert r.status_code == 200
        assert r.json()["predictions"][0]["model_version"] == second.version

        # The deployment's way: the copy read from the rows materialization moved.
        fast = FlapPredictor(
            open_store(settings, redis_url, env["project"]),
            tmp_path / "cache2",
            redis=env["redis"],
            settings=settings,
        )
        assert await fast.refresh_features() is True
        assert fast.status.cached_sessions == 300
        found, missing = fast.features.lookup(known)
        assert missing == []
        assert dict(zip(FEATURES, found[known[0]].tolist(), strict=True)) == pytest.approx(
            _latest(env["frame"], known[0]), rel=1e-6
        )

        r = await c.get("/api/v1/ml/models", headers=HEADERS)
        assert r.json()["total"] == 3
        assert [m["active"] for m in r.json()["items"]] == [True, False, False]
        assert r.json()["items"][1]["metrics"]["model"]["roc_auc"] > 0.5
        r = await c.post(
            "/api/v1/ml/models/999/activate", headers={**HEADERS, "X-Role": "platform-admin"}
        )
        assert r.status_code == 404
        r = await c.post(
            "/api/v1/ml/models/0/activate", headers={**HEADERS, "X-Role": "platform-admin"}
        )
        assert r.status_code == 422 and "version" in r.text
