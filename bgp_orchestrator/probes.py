"""Reachability probes of the backing services, with errors that say what to check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bgp_orchestrator.local.services import redact


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    detail: str
    latency_ms: float | None = None


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")


async def postgres(url: str, timeout_s: float = 3.0) -> Probe:
    import asyncpg

    from bgp_orchestrator.storage.database import asyncpg_dsn

    started = time.perf_counter()
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(asyncpg_dsn(url), timeout=timeout_s), timeout_s
        )
        try:
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return Probe(
            "postgres",
            False,
            f"cannot reach PostgreSQL at {_where(url)} ({type(exc).__name__}: {exc}); "
            "check BGPO_DATABASE_URL, or unset it to use the embedded server",
        )
    return Probe(
        "postgres",
        True,
        f"PostgreSQL {version} at {redact(url)}",
        (time.perf_counter() - started) * 1000,
    )


async def redis(url: str, timeout_s: float = 3.0) -> Probe:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    started = time.perf_counter()
    client = aioredis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        info = await client.info("server")
    except (OSError, RedisError) as exc:
        return Probe(
            "redis",
            False,
            f"cannot reach Redis at {_where(url)} ({type(exc).__name__}: {exc}); "
            "check BGPO_REDIS_URL, or unset it to use the embedded server",
        )
    finally:
        await client.aclose()
    return Probe(
        "redis",
        True,
        f"Redis {info.get('redis_version')} at {redact(url)}",
        (time.perf_counter() - started) * 1000,
    )


async def kafka(bootstrap: str, timeout_s: float = 5.0) -> Probe:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    started = time.perf_counter()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except (OSError, TimeoutError, KafkaError) as exc:
        return Probe(
            "kafka",
            False,
            f"cannot reach a Kafka broker at {bootstrap} ({type(exc).__name__}: {exc}); "
            "check BGPO_KAFKA_BOOTSTRAP_SERVERS, or unset it to use the embedded broker",
        )
    finally:
        await admin.close()
    brokers = len(cluster.get("brokers", []))
    return Probe(
        "kafka", True, f"{brokers} broker(s) at {bootstrap}", (time.perf_counter() - started) * 1000
    )


async def http(name: str, url: str, timeout_s: float = 3.0) -> Probe:
    import httpx

    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return Probe(name, False, f"{url} does not answer ({type(exc).__name__})")
    ok = response.status_code == 200
    return Probe(
        name, ok, f"{url} -> HTTP {response.status_code}", (time.perf_counter() - started) * 1000
    )
