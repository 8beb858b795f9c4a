"""A storm of global observations through the real worker, broker and PostgreSQL.

120,000 unowned prefixes, each announced by two origins (a MOAS storm, as in a
large leak), with hijacks of a tenant's prefixes spread through it. The worker
must store every hijack, aggregate the storm into one row per prefix, slow
down (back-pressure) rather than fall over, and keep its event loop and its
health check answering the whole time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection.checkpoint import MemoryCheckpoints
from bgp_orchestrator.detection.worker import DetectionWorker
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.storage.database import Database
from tests.integration.test_detection_flow import _settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TENANT_ASN = 64500
UPSTREAM = 3356
STORM_PREFIXES = 120_000
HIJACKS = 40


def storm_prefix(i: int) -> str:
    return f"{60 + i // 65536}.{(i // 256) % 256}.{i % 256}.0/24"


def storm(tenant_prefixes: list[str]) -> tuple[list[Update], list[str]]:
    """The storm's updates in order, and the hijacked tenant prefixes."""
    updates: list[Update] = []
    hijacked: list[str] = []
    every = STORM_PREFIXES // HIJACKS
    t = 1_700_000_000.0
    for i in range(STORM_PREFIXES):
        prefix = storm_prefix(i)
        t += 0.0001
        for n, origin in enumerate((10_000 + i % 5000, 30_000 + i % 7000)):
            updates.append(
                Update(
                    Kind.ANNOUNCE,
                    t,
                    f"10.0.{n}.{i % 200}",
                    3333 + n,
                    prefix,
                    (3333 + n, 174, origin),
                    source="test",
                    collector=f"rrc{n:02d}",
                )
            )
        if i % every == every - 1:
            target = tenant_prefixes[len(hijacked) % len(tenant_prefixes)]
            hijacked.append(target)
            updates.append(
                Update(
                    Kind.ANNOUNCE,
                    t,
                    "10.9.9.9",
                    6939,
                    target,
                    (6939, 174, 40_000 + len(hijacked)),
                    source="test",
                    collector="rrc09",
                )
            )
    return updates, hijacked


async def test_a_storm_degrades_but_tenant_conflicts_are_stored_and_health_answers(
    db: Database, database_url: str, kafka_bootstrap: str, tmp_path: Path, clean: None
) -> None:
    settings = _settings(database_url, tmp_path)
    tenant_prefixes = [f"45.{64 + i}.0.0/16" for i in range(8)]
    async with db.connection() as conn:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('stormco', 'Storm Co') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO autonomous_systems (tenant_id, asn) VALUES ($1, $2)", tenant, TENANT_ASN
        )
        await conn.execute(
            "INSERT INTO neighbor_asns (tenant_id, asn, relationship) VALUES ($1, $2, 'upstream')",
            tenant,
            UPSTREAM,
        )
        for prefix in tenant_prefixes:
            await conn.execute(
                "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
                "VALUES ($1, $2::cidr, ARRAY[$3::bigint], 24)",
                tenant,
                prefix,
                TENANT_ASN,
            )
    updates, hijacked = storm(tenant_prefixes)
    partitions = await ensure_topics(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4
    )
    async with UpdatePublisher(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, partitions
    ) as publisher:
        await publisher.publish(updates)

    # A small backlog cap, so that this storm must engage the back-pressure.
    worker = DetectionWorker(
        settings, db, MemoryCheckpoints(), kafka_bootstrap, name="storm", max_global_backlog=5000
    )
    stop = asyncio.Event()
    ticks: list[float] = []
    problems: list[list[str]] = []

    async def watch() -> None:
        """What a health check would see: the loop answers, the worker reports no problem."""
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            ticks.append(now - last)
            last = now
            problems.append(worker.health())

    async def hijacks_stored() -> int:
        async with db.connection() as conn:
            return int(
                await conn.fetchval(
                    "SELECT count(DISTINCT origin_asn) FROM conflicts "
                    "WHERE tenant_id = $1 AND type = 'exact-prefix-hijack'",
                    tenant,
                )
            )

    async def drained() -> bool:
        if task.done():
            task.result()
        stats = worker.stats()
        return (
            stats["records"] >= publisher.stats.records
            and stats["global_backlog"] == 0
            and await hijacks_stored() == HIJACKS
        )

    async def why() -> str:
        return f"hijacks stored {await hijacks_stored()}/{HIJACKS}, stats {worker.stats()}"

    watcher = asyncio.create_task(watch())
    task = asyncio.create_task(worker.run(stop))
    started = time.monotonic()
    try:
        await wait_for(drained, 300, why)
    finally:
        stop.set()
        await task
        await watcher
        await worker.aclose()
    elapsed = time.monotonic() - started

    assert await hijacks_stored() == HIJACKS
    async with db.connection() as conn:
        prefixes = await conn.fetch(
            "SELECT DISTINCT prefix::text AS p FROM conflicts "
            "WHERE tenant_id = $1 AND type = 'exact-prefix-hijack'",
            tenant,
        )
    assert {r["p"] for r in prefixes} == set(hijacked)
    async with db.connection() as conn:
        rows = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT prefix) AS prefixes, "
            "min((details->>'observations')::int) AS least, "
            "min(jsonb_array_length(details->'origins')) AS origins "
            "FROM conflicts WHERE tenant_id IS NULL AND type = 'moas'"
        )
        events = await conn.fetchval("SELECT count(*) FROM conflict_events WHERE tenant_id IS NULL")
    # One row per prefix (not per prefix and origin), with its origins in the sample.
    assert rows["n"] == rows["prefixes"] == STORM_PREFIXES
    assert rows["least"] >= 1 and rows["origins"] == 2
    assert events == 0
    stats = worker.stats()
    assert stats["backpressure_pauses"] >= 1, stats
    # The loop never stalled: no tick took more than a second, no problem was reported.
    assert max(ticks) < 1.0, f"the event loop was held for {max(ticks):.2f}s"
    assert not any(problems), [p for p in problems if p][:3]
    assert len(ticks) > elapsed * 5
