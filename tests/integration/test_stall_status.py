"""`bgpo status` reports a partition whose progress stopped, and clears it when it resumes.

The detector's PostgreSQL is reached through a proxy that the test cuts: the
worker cannot store the conflict of a new record, so it pauses, retries, and
commits nothing; after ``BGPO_STALL_AFTER_S`` its health check and `bgpo
status` (exit 1) name the stalled partition. When the proxy lets traffic
through again, the worker stores the conflict by itself and status is clean.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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
from bgp_orchestrator.stream.progress import ProgressStore
from tests.conftest import free_port
from tests.faults import TcpProxy
from tests.integration.test_detection_flow import _settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STALL_S = 3.0
PREFIX = "45.70.0.0/16"


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{netloc}:{port}"))


def status(settings: Settings, database_url: str, redis_url: str, kafka: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BGPO_")}
    env.update(
        BGPO_DATA_DIR=str(settings.data_dir),
        BGPO_DATABASE_URL=database_url,
        BGPO_REDIS_URL=redis_url,
        BGPO_KAFKA_BOOTSTRAP_SERVERS=kafka,
        BGPO_KAFKA_TOPIC=settings.kafka_topic,
        BGPO_DETECTOR_GROUP=settings.detector_group,
        BGPO_STALL_AFTER_S=str(STALL_S),
        BGPO_RAY_DASHBOARD_PORT=str(free_port()),
        BGPO_API_PORT=str(free_port()),
        BGPO_RAY_PORT=str(free_port()),
        COLUMNS="1000",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bgp_orchestrator.cli.main", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def _row(output: str, group: str) -> str:
    return next(line for line in output.splitlines() if f"detectors ({group})" in line)


async def test_status_reports_a_stalled_partition(
    database_url: str, kafka_bootstrap: str, redis_url: str, tmp_path: Path, clean: None
) -> None:
    import redis.asyncio as aioredis

    settings = _settings(database_url, tmp_path, stall_after_s=STALL_S)
    pg = urlsplit(database_url)
    redis = aioredis.from_url(redis_url)
    async with TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432) as proxy:
        db = Database(
            _via(database_url, proxy.port),
            PoolOptions(connect_timeout_s=1.0, command_timeout_s=2.0, acquire_timeout_s=1.0),
        )
        async with db.connection() as conn:
            tenant = await conn.fetchval(
                "INSERT INTO tenants (slug, name) VALUES ('stall', 'Stall') RETURNING id"
            )
            await conn.execute(
                "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
                "VALUES ($1, $2::cidr, ARRAY[64500]::bigint[], 24)",
                tenant,
                PREFIX,
            )
        await ensure_topics(kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4)
        group = settings.detector_group
        worker = DetectionWorker(
            settings,
            db,
            RedisCheckpoints(redis, group, settings.kafka_topic),
            kafka_bootstrap,
            name="stall",
            reference_interval_s=0.5,
            progress=ProgressStore(redis, group, settings.kafka_topic),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()

        async def hijack(origin: int) -> int:
            update = Update(Kind.ANNOUNCE, 1.0, "10.1.1.1", 6939, PREFIX, (6939, origin))
            [(partition, batch)] = codec.split_by_partition([update], 4).items()
            await producer.send_and_wait(
                settings.kafka_topic, codec.encode_batch(batch), partition=partition
            )
            return partition

        async def stored(origin: int) -> bool:
            if task.done():
                task.result()
            async with db.connection() as conn:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM conflicts WHERE tenant_id = $1 AND origin_asn = $2",
                        tenant,
                        origin,
                    )
                )

        def check(expect_stalled: bool) -> str:
            code, out = status(settings, database_url, redis_url, kafka_bootstrap)
            row = _row(out, group)
            assert ("stalled" in row) is expect_stalled, out
            if expect_stalled:
                assert code == 1
            return row

        try:
            partition = await hijack(40001)
            await wait_for(lambda: stored(40001), 60)
            await asyncio.sleep(2)  # committed and published
            row = await asyncio.to_thread(check, False)
            assert "caught up" in row

            proxy.cut()  # PostgreSQL is gone for this worker
            await hijack(40002)
            await asyncio.sleep(STALL_S + 3)
            health = worker.health()
            assert any(f"partition {partition} is stalled" in p for p in health), health
            row = await asyncio.to_thread(check, True)
            assert f"partition {partition} stalled: 1 records behind" in row
            assert "PostgreSQL" in row  # the cause, as the worker published it

            proxy.restore()
            await wait_for(lambda: stored(40002), 60)
            await asyncio.sleep(2)
            assert worker.health() == []
            await asyncio.to_thread(check, False)
        finally:
            stop.set()
            await task
            await worker.aclose()
            await producer.stop()
            await db.close()
            await redis.aclose()
