"""The real data path: Kafka (Tansu) -> detection worker -> PostgreSQL, and the dead letters."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection import scenario
from bgp_orchestrator.detection.checkpoint import MemoryCheckpoints
from bgp_orchestrator.detection.worker import DetectionWorker
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.setup import seed_tenants, write_reference_files
from bgp_orchestrator.simulation.stream import Simulation
from bgp_orchestrator.simulation.world import World, build
from bgp_orchestrator.storage import conflicts as conflict_store
from bgp_orchestrator.storage.database import Database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        kafka_topic=f"updates-{run}",
        kafka_dlq_topic=f"dlq-{run}",
        detector_group=f"detectors-{run}",
        kafka_partitions=4,
        **extra,
    )


async def stored(db: Database, tenant_ids: dict[int, int]) -> list[scenario.Expected]:
    """Conflicts in PostgreSQL as Expected entries, tenant ids mapped back to the world's."""
    async with db.connection() as conn:
        return await conflict_store.as_expected(conn, tenant_ids)


async def prepare_world(db: Database, world: World, settings: Settings) -> dict[int, int]:
    async with db.connection() as conn:
        ids = await seed_tenants(conn, world)
    return {t.id: ids[t.slug] for t in world.tenants}


async def wait_for(predicate: Any, timeout_s: float = 90.0, why: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.5)
    detail = await why() if why is not None else ""
    raise AssertionError(f"condition not met in {timeout_s:.0f}s {detail}")


async def read_dead_letters(bootstrap: str, topic: str, expect: int) -> list[DeadLetter]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"dlq-reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + 30
        while len(letters) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                letters.extend(DeadLetter.decode(r.value) for r in records)
    finally:
        await consumer.stop()
    return letters


async def test_simulated_incidents_are_all_found_and_nothing_else(
    db: Database, database_url: str, kafka_bootstrap: str, tmp_path: Path, clean: None
) -> None:
    world = build(seed=3, peers=500, prefixes=3000, tenant_prefixes=20)
    vrps, rels = write_reference_files(world, tmp_path / "ref")
    settings = _settings(database_url, tmp_path, rpki_vrp_file=vrps, as_relationships_file=rels)
    tenant_ids = await prepare_world(db, world, settings)
    sim = Simulation(world, total=30_000, incidents=20, seed=5)
    partitions = await ensure_topics(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4
    )
    async with UpdatePublisher(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, partitions
    ) as publisher:
        await publisher.publish(sim.warmup())
        for chunk in sim.updates():
            await publisher.publish(chunk)
    worker = DetectionWorker(settings, db, MemoryCheckpoints(), kafka_bootstrap, name="w1")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    expected = sim.expected()

    async def complete() -> bool:
        if task.done():
            task.result()
        missing, _ = scenario.compare(expected, await stored(db, tenant_ids))
        return not missing and worker.counters.updates >= publisher.stats.updates

    async def why() -> str:
        missing, unexpected = scenario.compare(expected, await stored(db, tenant_ids))
        return (
            f"missing={missing} unexpected={unexpected} "
            f"published={publisher.stats.updates} stats={worker.stats()}"
        )

    try:
        await wait_for(complete, why=why)
    finally:
        stop.set()
        await task
    missing, unexpected = scenario.compare(expected, await stored(db, tenant_ids))
    assert missing == [] and unexpected == []
    assert worker.stats()["detector_errors"] == {}
    # one "opened" event per tenant conflict (global observations raise none), and one
    # "resolved" per recovered visibility loss
    async with db.connection() as conn:
        events = await conn.fetch("SELECT event, count(*) AS n FROM conflict_events GROUP BY 1")
        total = await conn.fetchval("SELECT count(*) FROM conflicts WHERE tenant_id IS NOT NULL")
    counts = {r["event"]: r["n"] for r in events}
    assert counts["opened"] == total
    assert counts.get("resolved", 0) == sum(1 for e in expected if e.resolved)


async def test_bad_records_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    db: Database, database_url: str, kafka_bootstrap: str, tmp_path: Path, clean: None
) -> None:
    from aiokafka import AIOKafkaProducer

    world = build(seed=4, peers=50, prefixes=200, tenant_prefixes=5)
    settings = _settings(database_url, tmp_path)
    tenant_ids = await prepare_world(db, world, settings)
    tenant = world.tenants[0]
    await ensure_topics(kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4)
    hijack = Update(
        Kind.ANNOUNCE,
        1.0,
        "10.9.9.9",
        3356,
        tenant.prefixes[0],
        (3356, 13335),
        source="test",
        collector="t",
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka_topic, b"\x00not msgpack", partition=0)
        bad_prefix = hijack._replace(prefix="45.65.12.1/24")
        await producer.send_and_wait(
            settings.kafka_topic, codec.encode_batch([bad_prefix]), partition=1
        )
        for p in range(4):  # the real hijack after the bad records, on every partition
            await producer.send_and_wait(
                settings.kafka_topic, codec.encode_batch([hijack]), partition=p
            )
    finally:
        await producer.stop()
    worker = DetectionWorker(settings, db, MemoryCheckpoints(), kafka_bootstrap, name="w2")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def hijack_stored() -> bool:
        return any(e.type == "exact-prefix-hijack" for e in await stored(db, tenant_ids))

    try:
        await wait_for(hijack_stored, 60)
    finally:
        stop.set()
        await task
    letters = await read_dead_letters(kafka_bootstrap, settings.kafka_dlq_topic, 2)
    by_code = {letter.code: letter for letter in letters}
    assert set(by_code) == {"malformed-record", "invalid-prefix"}
    assert by_code["malformed-record"].position.endswith("/0@0")
    assert "45.65.12.1/24" in str(by_code["invalid-prefix"].payload)
    assert worker.dead.sent == {"malformed-record": 1, "invalid-prefix": 1}


async def test_inventory_changes_reach_a_running_detector(
    db: Database, database_url: str, kafka_bootstrap: str, tmp_path: Path, clean: None
) -> None:
    from aiokafka import AIOKafkaProducer

    settings = _settings(database_url, tmp_path)
    await ensure_topics(kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4)
    worker = DetectionWorker(
        settings, db, MemoryCheckpoints(), kafka_bootstrap, name="w3", reference_interval_s=0.5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.ready.wait(), 30)
        async with db.connection() as conn:
            tenant = await conn.fetchval(
                "INSERT INTO tenants (slug, name) VALUES ('late', 'Late') RETURNING id"
            )
            await conn.execute(
                "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
                "VALUES ($1, '45.65.0.0/16', ARRAY[200100]::bigint[], 16)",
                tenant,
            )
        await wait_for(lambda: _has_monitored(worker), 30)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        update = Update(Kind.ANNOUNCE, 2.0, "10.1.1.1", 3356, "45.65.12.0/24", (3356, 13335))
        partition = codec.split_by_partition([update], 4)
        for p, batch in partition.items():
            await producer.send_and_wait(
                settings.kafka_topic, codec.encode_batch(batch), partition=p
            )
        await producer.stop()

        async def found() -> bool:
            async with db.connection() as conn:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM conflicts WHERE type = 'sub-prefix-hijack' "
                        "AND tenant_id = $1",
                        tenant,
                    )
                )

        await wait_for(found, 30)
    finally:
        stop.set()
        await task


async def _has_monitored(worker: DetectionWorker) -> bool:
    return len(worker.loader.reference.monitored) > 0
