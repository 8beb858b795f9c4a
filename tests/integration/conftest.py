"""Integration fixtures: a real PostgreSQL (CI's server, or the embedded one) per session.

Set BGPO_TEST_DATABASE_URL to use an existing server (CI points it at the
machine's PostgreSQL on 127.0.0.1:5432); otherwise an embedded PostgreSQL is
started in a temporary directory. Each session works in a database of its
own, created and dropped here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn

from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.signing import secret_box
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.local.kafka import EmbeddedKafka
from bgp_orchestrator.local.postgres import EmbeddedPostgres
from bgp_orchestrator.local.redis import EmbeddedRedis
from bgp_orchestrator.local.victoria import EmbeddedVictoriaMetrics, victoria_metrics_binary
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage import migrate
from bgp_orchestrator.storage.database import Database
from tests.conftest import free_port

TABLES = "tenants, peer_prefix_counts, conflicts, api_keys"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server we may create databases on."""
    configured = os.environ.get("BGPO_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("embedded-pg"), embedded_postgres_port=free_port()
    )
    server = EmbeddedPostgres(settings)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def create_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"

    async def run() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")

    async def run() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A migrated database of this test session."""
    url = create_database(postgres_server, "bgpo_it")
    migrate.upgrade(url)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture
def fresh_database(postgres_server: str) -> Iterator[str]:
    """An empty (unmigrated) database of this test alone."""
    url = create_database(postgres_server, "bgpo_mig")
    yield url
    drop_database(postgres_server, url)


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


@pytest.fixture
async def clean(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


#: The tests' webhook receivers listen on loopback, which only a lab setting allows.
LAB_NETWORKS: list[Any] = ["127.0.0.0/8"]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        webhook_allowed_networks=LAB_NETWORKS,
    )


def lab_dispatcher(db: Database, settings: Settings, **kwargs: Any) -> AlertDispatcher:
    """A dispatcher that may reach the tests' receivers on loopback and signs with the
    same key as the API built from ``settings``."""
    return AlertDispatcher(
        db, egress=EgressPolicy.from_settings(settings), secrets=secret_box(settings), **kwargs
    )


@pytest.fixture
async def client(settings: Settings, db: Database, clean: None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


#: Development mode on loopback: act as the platform administrator.
PLATFORM = {"X-Role": "platform-admin"}


async def mint_key(
    db: Database, settings: Settings, tenant: str | None, role: str, name: str = "test"
) -> dict[str, str]:
    """Headers carrying a fresh API key of ``tenant`` (None: a platform key) and ``role``."""
    from bgp_orchestrator.auth import apikeys
    from bgp_orchestrator.auth.principal import Role

    async with db.connection() as conn:
        tenant_id = (
            None
            if tenant is None
            else await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant)
        )
        created = await apikeys.create(
            conn, apikeys.secret_of(settings), tenant_id, name, Role(role), created_by="tests"
        )
    return {"Authorization": f"Bearer {created.key}"}


class Tenant:
    """A tenant created through the API, with its headers."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.headers = {"X-Tenant": slug}


async def make_tenant(client: httpx.AsyncClient, slug: str, *asns: int) -> Tenant:
    r = await client.post(
        "/api/v1/tenants",
        json={"slug": slug, "name": slug.title()},
        headers={"X-Role": "platform-admin"},
    )
    assert r.status_code == 201, r.text
    tenant = Tenant(slug)
    for asn in asns:
        r = await client.post("/api/v1/asns", json={"asn": asn}, headers=tenant.headers)
        assert r.status_code == 201, r.text
    return tenant


@pytest.fixture
async def acme(client: httpx.AsyncClient) -> Tenant:
    return await make_tenant(client, "acme", 64500)


class LiveServer:
    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The API under a real uvicorn server (its lifespan owns the pool); its metric
    store is the Parquet fallback in its data directory (empty: detect answers 404)."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("live"),
        metric_store="parquet",
    )
    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Kafka-protocol broker: the embedded Tansu (no CI machine runs Kafka)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("kafka"), embedded_kafka_port=free_port())
    broker = EmbeddedKafka(settings)
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """BGPO_TEST_REDIS_URL (CI: the machine's Redis), else an embedded one."""
    configured = os.environ.get("BGPO_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    settings = Settings(data_dir=tmp_path_factory.mktemp("redis"), embedded_redis_port=free_port())
    server = EmbeddedRedis(settings)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def running_victoria(data_dir: Path) -> Iterator[EmbeddedVictoriaMetrics]:
    """The embedded VictoriaMetrics daemon on a free port, stopped afterwards."""
    if victoria_metrics_binary() is None:
        pytest.skip(
            "the victoria-metrics binary is not installed (Debian package victoria-metrics; "
            "`./dev test` installs it as root)"
        )
    server = EmbeddedVictoriaMetrics(
        Settings(data_dir=data_dir, embedded_victoria_metrics_port=free_port())
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedVictoriaMetrics]:
    """A real VictoriaMetrics shared by the session's tests: read only your own series."""
    with running_victoria(tmp_path_factory.mktemp("vm")) as server:
        yield server


@pytest.fixture
def own_victoria(tmp_path: Path) -> Iterator[EmbeddedVictoriaMetrics]:
    """A VictoriaMetrics of one test's own, for reads that take every series there is."""
    with running_victoria(tmp_path / "vm") as server:
        yield server
