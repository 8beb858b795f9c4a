"""Abuse limits on the real API app (real PostgreSQL, real Redis): rate limits shared by
two replicas and their fallback without Redis, the body-size cap, security headers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.api.ratelimit import RateLimiter
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.conftest import free_port
from tests.integration.conftest import make_tenant, mint_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def replica(settings: Settings, db: Database, limiter: RateLimiter) -> FastAPI:
    """One API replica with its own limiter; callers authenticate with real API keys."""
    app = create_app(settings, database=db)
    app.state.rate_limiter = limiter
    return app


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        api_max_body_bytes=4096,
        trusted_proxies=["127.0.0.0/8"],
    )


@pytest.fixture
async def keys(settings: Settings, db: Database, clean: None) -> dict[str, dict[str, str]]:
    """API keys by name: a, b (viewers of acme), c (viewer of globex), w (admin of acme)."""
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        await make_tenant(client, "acme")
        await make_tenant(client, "globex")
    return {
        "a": await mint_key(db, settings, "acme", "viewer", "a"),
        "b": await mint_key(db, settings, "acme", "viewer", "b"),
        "c": await mint_key(db, settings, "globex", "viewer", "c"),
        "w": await mint_key(db, settings, "acme", "admin", "w"),
    }


@pytest.fixture
async def clients(
    settings: Settings, db: Database, redis_url: str
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two replicas, each with its own limiter on the same Redis (a fresh key prefix)."""
    prefix = f"bgpo-test:{secrets.token_hex(4)}:"
    limiters = [RateLimiter(aioredis.from_url(redis_url), 5, 8, prefix=prefix) for _ in range(2)]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=replica(settings, db, limiter)),
            base_url="http://api",
        )
        for limiter in limiters
    ]
    yield clients
    for client in clients:
        await client.aclose()
    for limiter in limiters:
        await limiter.aclose()


async def test_limits_per_key_and_per_tenant_are_shared_by_replicas(
    clients: list[httpx.AsyncClient], keys: dict[str, dict[str, str]]
) -> None:
    codes = []
    for i in range(6):  # key a: 5 a minute, alternately through both replicas
        r = await clients[i % 2].get("/api/v1/sessions", headers=keys["a"])
        codes.append(r.status_code)
    assert codes == [200] * 5 + [429]
    refused = r
    assert refused.json()["code"] == "rate-limited"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # one request every 12 s

    codes = []
    for i in range(4):  # key b of the same tenant: the tenant has 8 a minute
        r = await clients[i % 2].get("/api/v1/sessions", headers=keys["b"])
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 429]
    # Another tenant's key is not affected.
    r = await clients[1].get("/api/v1/sessions", headers=keys["c"])
    assert r.status_code == 200
    # Routes without a principal (health, metrics) are not limited.
    for _ in range(10):
        assert (await clients[0].get("/healthz")).status_code == 200


async def test_without_redis_each_replica_limits_on_its_own(
    settings: Settings,
    db: Database,
    keys: dict[str, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = aioredis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    limiter = RateLimiter(nowhere, 3, 100)
    app = replica(settings, db, limiter)
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        codes = [
            (await client.get("/api/v1/sessions", headers=keys["a"])).status_code for _ in range(4)
        ]
    await limiter.aclose()
    assert codes == [200, 200, 200, 429]
    assert not limiter.shared
    assert any(
        "each API replica enforces them on its own" in r.getMessage() for r in caplog.records
    )


async def test_bodies_over_the_cap_answer_413(
    clients: list[httpx.AsyncClient], keys: dict[str, dict[str, str]]
) -> None:
    big = {"name": "noc", "url": "http://93.184.215.14/hook", "pad": "x" * 5000}
    r = await clients[0].post("/api/v1/webhooks", headers=keys["w"], json=big)
    assert r.status_code == 413 and r.json()["code"] == "body-too-large"
    assert "BGPO_API_MAX_BODY_BYTES" in r.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "noc", "url": "http://93.184.215.14/hook", "pad": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = await clients[0].post(
        "/api/v1/webhooks",
        headers={**keys["w"], "Content-Type": "application/json"},
        content=chunks(),
    )
    assert r.status_code == 413 and r.json()["code"] == "body-too-large"
    r = await clients[0].post(
        "/api/v1/webhooks",
        headers=keys["w"],
        json={"name": "noc", "url": "http://93.184.215.14/hook"},
    )
    assert r.status_code == 201, r.text


async def test_security_headers_and_hsts_behind_a_trusted_proxy(
    clients: list[httpx.AsyncClient],
) -> None:
    r = await clients[0].get("/healthz")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in r.headers
    # The test client is 127.0.0.1, inside BGPO_TRUSTED_PROXIES here.
    r = await clients[0].get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    docs = await clients[0].get("/docs")
    assert docs.status_code == 200
    assert "https://cdn.jsdelivr.net" in docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    missing = await clients[0].get("/nowhere")
    assert missing.status_code == 404 and missing.headers["X-Frame-Options"] == "DENY"


async def test_hsts_is_not_granted_to_an_untrusted_forwarded_header(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path), database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        r = await client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert "Strict-Transport-Security" not in r.headers
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://api"
    ) as client:
        r = await client.get("/healthz")
        assert "Strict-Transport-Security" in r.headers
