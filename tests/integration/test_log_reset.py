"""A broker that lost its log: the detector never applies a checkpoint of the old log.

The embedded broker keeps messages in memory only. Restarted, it numbers the
new records from 0 again; once the new log has grown past the checkpoint's
offset, seeking there would skip the new records and keep state built from
records that are gone. The detector reads the checkpoint's last record back,
sees it is not the same, says so (log, stats, published progress) and
rebuilds from the new log's beginning: a hijack at its start is found.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
from bgp_orchestrator.detection.worker import DetectionWorker
from bgp_orchestrator.ingest.publisher import ensure_topics
from bgp_orchestrator.local.kafka import EmbeddedKafka
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from bgp_orchestrator.stream.lag import group_lag
from bgp_orchestrator.stream.progress import ProgressStore
from tests.conftest import free_port
from tests.integration.test_detection_flow import _settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PREFIX = "45.71.0.0/16"


def route(origin: int, n: int) -> Update:
    return Update(
        Kind.ANNOUNCE, 1.0 + n, f"10.2.{n // 250}.{n % 250}", 6939, PREFIX, (6939, origin)
    )


async def publish(bootstrap: str, topic: str, updates: list[Update]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for update in updates:  # one record each, so offsets count updates
            [(partition, batch)] = codec.split_by_partition([update], 1).items()
            await producer.send_and_wait(topic, codec.encode_batch(batch), partition=partition)
    finally:
        await producer.stop()


async def test_a_checkpoint_of_a_lost_log_is_not_applied(
    db: Database, database_url: str, redis_url: str, tmp_path: Path, clean: None
) -> None:
    import redis.asyncio as aioredis

    broker = EmbeddedKafka(Settings(data_dir=tmp_path / "kafka", embedded_kafka_port=free_port()))
    settings = _settings(database_url, tmp_path)
    async with db.connection() as conn:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('reset', 'Reset') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
            "VALUES ($1, $2::cidr, ARRAY[64500]::bigint[], 24)",
            tenant,
            PREFIX,
        )
    redis = aioredis.from_url(redis_url)
    group, topic = settings.detector_group, settings.kafka_topic

    def worker(name: str) -> DetectionWorker:
        return DetectionWorker(
            settings,
            db,
            RedisCheckpoints(redis, group, topic),
            broker.url,
            name=name,
            checkpoint_interval_s=0.0,
            progress=ProgressStore(redis, group, topic),
        )

    async def origins() -> set[int]:
        async with db.connection() as conn:
            rows = await conn.fetch(
                "SELECT origin_asn FROM conflicts WHERE tenant_id = $1 "
                "AND type = 'exact-prefix-hijack'",
                tenant,
            )
        return {r["origin_asn"] for r in rows}

    broker.start()
    try:
        # The old log: 20 legitimate routes, checkpointed at offset 20.
        await ensure_topics(broker.url, topic, settings.kafka_dlq_topic, 1)
        await publish(broker.url, topic, [route(64500, n) for n in range(20)])
        first = worker("before")
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))

        async def checkpointed() -> bool:
            if task.done():
                task.result()
            return first.counters.checkpoints_saved > 0 and first.positions.get(0) == 20

        await wait_for(checkpointed, 60)
        stop.set()
        await task
        await first.aclose()
        assert (await RedisCheckpoints(redis, group, topic).load(0) or (0,))[0] == 20
    finally:
        broker.stop()

    broker.start()  # the same broker, its log gone
    try:
        # The new log: a hijack at offset 0, then more than 20 routes.
        await ensure_topics(broker.url, topic, settings.kafka_dlq_topic, 1)
        await publish(
            broker.url, topic, [route(40_001, 100)] + [route(64500, n) for n in range(101, 130)]
        )
        second = worker("after")
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))

        async def found() -> bool:
            if task.done():
                task.result()
            return 40_001 in await origins()

        try:
            await wait_for(found, 60)
            await asyncio.sleep(1.5)  # published
            assert second.stats()["log_resets"] == 1
            lag = await group_lag(broker.url, topic, group, ProgressStore(redis, group, topic), 60)
            assert "log reset detected on 1 partition(s)" in lag.describe()
        finally:
            stop.set()
            await task
            await second.aclose()
    finally:
        broker.stop()
        await redis.aclose()
