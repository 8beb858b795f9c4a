"""Readiness and 503s when PostgreSQL is unreachable: fast answers, never a hang."""

import time
from pathlib import Path

import httpx
import pytest

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database, PoolOptions
from tests.conftest import free_port

pytestmark = pytest.mark.integration


async def test_unreachable_database_gives_fast_503s(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    db = Database(url, PoolOptions(connect_timeout_s=2, acquire_timeout_s=2))
    app = create_app(Settings(database_url=url, data_dir=tmp_path), database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        assert (await c.get("/healthz")).status_code == 200
        started = time.monotonic()
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["postgres"]["ok"] is False
        r = await c.post(
            "/api/v1/tenants",
            json={"slug": "acme", "name": "Acme"},
            headers={"X-Role": "platform-admin"},
        )
        assert r.status_code == 503
        assert r.json()["code"] == "database-unavailable"
        assert r.headers["retry-after"]
        r = await c.get("/api/v1/sessions", headers={"X-Tenant": "acme"})
        assert r.status_code == 503
        assert time.monotonic() - started < 6
        assert "bgpo_database_up 0.0" in (await c.get("/metrics")).text
    await db.close()


async def test_unmigrated_database_says_run_migrate(fresh_database: str, tmp_path: Path) -> None:
    db = Database(fresh_database)
    app = create_app(Settings(database_url=fresh_database, data_dir=tmp_path), database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        r = await c.post(
            "/api/v1/tenants",
            json={"slug": "acme", "name": "Acme"},
            headers={"X-Role": "platform-admin"},
        )
    await db.close()
    assert r.status_code == 503
    assert "bgpo migrate" in r.json()["detail"]
