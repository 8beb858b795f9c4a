"""At-least-once under dependency faults, with real PostgreSQL, Redis and broker.

1. PostgreSQL goes away while a batch's conflicts are being stored and the
   worker then dies: the partition's next owner still stores every conflict
   (nothing was committed or checkpointed past unstored work).
2. Redis is away when a partition is assigned: the partition stays paused
   instead of running with empty state; once Redis is back it resumes from its
   checkpoint, so a MOAS that needs the state from before the restart is found.

Faults are real: ``tests.faults.TcpProxy`` cuts the worker's connections.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
from bgp_orchestrator.detection.worker import DetectionWorker
from bgp_orchestrator.ingest.publisher import ensure_topics
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database, PoolOptions
from tests.faults import TcpProxy
from tests.integration.test_detection_flow import _settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PREFIX = "45.72.0.0/16"
FAST = PoolOptions(connect_timeout_s=1.0, command_timeout_s=2.0, acquire_timeout_s=1.0)


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def hijack(origin: int, n: int) -> Update:
    return Update(Kind.ANNOUNCE, 10.0 + n, "10.3.3.3", 6939, PREFIX, (6939, origin))


async def publish(bootstrap: str, settings: Settings, updates: list[Update]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for update in updates:
            [(partition, batch)] = codec.split_by_partition([update], 1).items()
            await producer.send_and_wait(
                settings.kafka_topic, codec.encode_batch(batch), partition=partition
            )
    finally:
        await producer.stop()


async def _tenant(db: Database) -> int:
    async with db.connection() as conn:
        tenant = int(
            await conn.fetchval(
                "INSERT INTO tenants (slug, name) VALUES ('faults', 'Faults') RETURNING id"
            )
        )
        await conn.execute(
            "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
            "VALUES ($1, $2::cidr, ARRAY[64500]::bigint[], 24)",
            tenant,
            PREFIX,
        )
    return tenant


async def _stored(db: Database, tenant: int, kind: str) -> set[int]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT origin_asn, details FROM conflicts WHERE tenant_id = $1 AND type = $2",
            tenant,
            kind,
        )
    return {r["origin_asn"] for r in rows}


async def test_a_store_failure_then_a_new_owner_loses_no_conflict(
    db: Database,
    database_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    clean: None,
) -> None:
    import redis.asyncio as aioredis

    settings = _settings(database_url, tmp_path)
    tenant = await _tenant(db)
    await ensure_topics(kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 1)
    redis = aioredis.from_url(redis_url)
    group, topic = settings.detector_group, settings.kafka_topic
    pg = urlsplit(database_url)
    try:
        async with TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as proxy:
            first_db = Database(_via(database_url, proxy.port), FAST)
            first = DetectionWorker(
                settings, first_db, RedisCheckpoints(redis, group, topic), kafka_bootstrap,
                name="first", checkpoint_interval_s=0.0,
            )  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(first.run(stop))
            await publish(kafka_bootstrap, settings, [hijack(40_001, 1)])
            await wait_for(lambda: _has(db, tenant, 40_001), 60)
            proxy.cut()  # PostgreSQL is gone for this worker from here on
            await publish(kafka_bootstrap, settings, [hijack(40_000 + n, n) for n in range(2, 12)])

            async def failing() -> bool:
                # it judged some of them, failed to store them and paused to retry
                return first.positions.get(0, 0) > 1 and bool(first.loop.stats()["outage"])

            await wait_for(failing, 60)
            assert await _stored(db, tenant, "exact-prefix-hijack") == {40_001}
            task.cancel()  # the worker dies with the batch unstored
            with pytest.raises(asyncio.CancelledError):
                await task
            await first.aclose()
            await first_db.close()

        second = DetectionWorker(
            settings, db, RedisCheckpoints(redis, group, topic), kafka_bootstrap, name="second"
        )
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        want = {40_000 + n for n in range(1, 12)}

        async def all_stored() -> bool:
            if task.done():
                task.result()
            return await _stored(db, tenant, "exact-prefix-hijack") == want

        try:
            await wait_for(all_stored, 60)
        finally:
            stop.set()
            await task
            await second.aclose()
    finally:
        await redis.aclose()


async def _has(db: Database, tenant: int, origin: int) -> bool:
    return origin in await _stored(db, tenant, "exact-prefix-hijack")


async def test_redis_away_at_assignment_keeps_the_partition_paused_not_empty(
    db: Database,
    database_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    clean: None,
) -> None:
    import redis.asyncio as aioredis

    settings = _settings(database_url, tmp_path)
    tenant = await _tenant(db)
    await ensure_topics(kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 1)
    group, topic = settings.detector_group, settings.kafka_topic
    direct = aioredis.from_url(redis_url)
    legit = Update(Kind.ANNOUNCE, 1.0, "10.4.4.4", 6939, PREFIX, (6939, 64500))
    try:
        # Before: the tenant's own origin announces the prefix, and is checkpointed.
        first = DetectionWorker(
            settings, db, RedisCheckpoints(direct, group, topic), kafka_bootstrap,
            name="before", checkpoint_interval_s=0.0,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await publish(kafka_bootstrap, settings, [legit])

        async def checkpointed() -> bool:
            if task.done():
                task.result()
            return first.positions.get(0) == 1 and first.counters.checkpoints_saved > 0

        await wait_for(checkpointed, 60)
        stop.set()
        await task
        await first.aclose()

        rd = urlsplit(redis_url)
        async with TcpProxy(rd.hostname or "127.0.0.1", rd.port or 6379) as proxy:
            proxy.cut()  # Redis is away when the next worker is assigned the partition
            via = aioredis.from_url(
                _via(redis_url, proxy.port), socket_timeout=1, socket_connect_timeout=1
            )
            second = DetectionWorker(
                settings, db, RedisCheckpoints(via, group, topic), kafka_bootstrap,
                name="after",
            )  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(second.run(stop))
            # A second origin: a MOAS only against the checkpointed state.
            moas = legit._replace(as_path=(6939, 40_100), timestamp=2.0)
            await publish(kafka_bootstrap, settings, [moas])

            async def assigned_and_waiting() -> bool:
                if task.done():
                    task.result()
                outage = second.loop.stats()["outage"] or ""
                return 0 in second.loop.partitions and "Redis" in outage

            await wait_for(assigned_and_waiting, 60)
            await asyncio.sleep(3)
            assert second.pipelines == {}  # not started with empty state
            assert second.loop.partitions[0].state == "loading"
            assert second.counters.records == 0
            assert second.loop.stats()["outage"] and "Redis" in second.loop.stats()["outage"]

            proxy.restore()

            async def found() -> bool:
                if task.done():
                    task.result()
                async with db.connection() as conn:
                    return bool(
                        await conn.fetchval(
                            "SELECT count(*) FROM conflicts WHERE tenant_id = $1 "
                            "AND type = 'moas'",
                            tenant,
                        )
                    )

            try:
                await wait_for(found, 60)
                assert second.counters.records == 1  # resumed after the checkpoint
            finally:
                stop.set()
                await task
                await second.aclose()
                await via.aclose()
    finally:
        await direct.aclose()
