"""The embedded PostgreSQL, Redis and Kafka-protocol broker: start, answer, keep data, stop."""

import asyncio
from pathlib import Path

import asyncpg
import pytest
import redis

from bgp_orchestrator import probes
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.local.services import embedded_services, endpoints
from bgp_orchestrator.settings import Settings
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        embedded_postgres_port=free_port(),
        embedded_redis_port=free_port(),
        embedded_kafka_port=free_port(),
        metric_store="parquet",  # the embedded VictoriaMetrics: test_metric_store_vm.py
    )


async def _kafka_round_trip(bootstrap: str) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("probe", num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait("probe", f"m{i}".encode(), key=str(i).encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "probe", bootstrap_servers=bootstrap, group_id="g", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got = 0
        for _ in range(10):
            batch = await consumer.getmany(timeout_ms=1000)
            got += sum(len(v) for v in batch.values())
            if got >= 5:
                break
        return got
    finally:
        await consumer.stop()


def test_embedded_services_start_keep_data_and_stop(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    services = embedded_services(settings)
    assert [s.name for s in services] == ["postgres", "redis", "kafka"]
    ep = endpoints(settings)
    try:
        for svc in services:
            svc.start()
            assert svc.running(), svc.name

        async def check() -> None:
            for probe in await asyncio.gather(
                probes.postgres(ep.database_url),
                probes.redis(ep.redis_url),
                probes.kafka(ep.kafka_bootstrap_servers),
            ):
                assert probe.ok, probe.detail
            conn = await asyncpg.connect(ep.database_url)
            await conn.execute("CREATE TABLE keep (v text)")
            await conn.execute("INSERT INTO keep VALUES ('survives')")
            await conn.close()
            assert await _kafka_round_trip(ep.kafka_bootstrap_servers) == 5

        asyncio.run(check())
        redis.Redis.from_url(ep.redis_url).set("keep", "survives")

        # Starting again is a no-op; a second stack on the same ports is refused clearly.
        pids = [svc.pid() for svc in services]
        for svc in services:
            svc.start()
        assert [svc.pid() for svc in services] == pids
        other = embedded_services(
            _settings(tmp_path / "other").model_copy(
                update={"embedded_redis_port": settings.embedded_redis_port}
            )
        )[1]
        with pytest.raises(ConfigurationError, match="BGPO_EMBEDDED_REDIS_PORT"):
            other.start()

        for svc in services:
            svc.stop()
            assert svc.pid() is None and not svc.running(), svc.name

        for svc in services:
            svc.start()

        async def survived() -> str:
            conn = await asyncpg.connect(ep.database_url)
            try:
                return str(await conn.fetchval("SELECT v FROM keep"))
            finally:
                await conn.close()

        assert asyncio.run(survived()) == "survives"
        assert redis.Redis.from_url(ep.redis_url).get("keep") == b"survives"
    finally:
        for svc in services:
            svc.stop()
