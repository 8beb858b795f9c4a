"""Killing a detection replica mid-stream loses no conflict and duplicates none.

The production path: the Serve detector deployment (two replicas in one Kafka
consumer group, checkpoints in Redis) over the embedded broker and PostgreSQL.
While a simulated stream with labelled incidents is being produced, one
replica is killed; Serve starts a new one, the consumer group rebalances, and
at the end the stored conflicts are exactly the labelled ones, each opened once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgp_orchestrator.detection import scenario
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.simulation.setup import write_reference_files
from bgp_orchestrator.simulation.stream import Simulation
from bgp_orchestrator.simulation.world import build
from bgp_orchestrator.storage.database import Database
from tests.conftest import free_port
from tests.integration.test_detection_flow import _settings, prepare_world, stored

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def ray_serve() -> Iterator[None]:
    import ray
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def _replica_names(app_name: str) -> list[tuple[str, str]]:
    import ray

    return sorted(
        (a["name"], a["namespace"])
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::") and f"{app_name}#" in a["name"]
    )


async def test_killing_a_replica_mid_stream_loses_and_duplicates_nothing(
    ray_serve: None,
    db: Database,
    database_url: str,
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    clean: None,
) -> None:
    import ray
    from ray import serve

    from deployments.detector import Detector

    world = build(seed=11, peers=2000, prefixes=10_000, tenant_prefixes=30)
    vrps, rels = write_reference_files(world, tmp_path / "ref")
    settings = _settings(database_url, tmp_path, rpki_vrp_file=vrps, as_relationships_file=rels)
    tenant_ids = await prepare_world(db, world, settings)
    partitions = await ensure_topics(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4
    )
    env = {
        "BGPO_DATABASE_URL": database_url,
        "BGPO_REDIS_URL": redis_url,
        "BGPO_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BGPO_KAFKA_TOPIC": settings.kafka_topic,
        "BGPO_KAFKA_DLQ_TOPIC": settings.kafka_dlq_topic,
        "BGPO_DETECTOR_GROUP": settings.detector_group,
        "BGPO_DATA_DIR": str(tmp_path),
        "BGPO_RPKI_VRP_FILE": str(vrps),
        "BGPO_AS_RELATIONSHIPS_FILE": str(rels),
    }
    app = Detector.options(  # type: ignore[attr-defined]
        num_replicas=2,
        health_check_period_s=2,
        ray_actor_options={"num_cpus": 0.1, "runtime_env": {"env_vars": env}},
    ).bind()
    serve.run(app, name="detector-test", route_prefix=None)

    sim = Simulation(world, total=240_000, incidents=40, seed=12)
    expected = sim.expected()
    killed = False
    started = time.monotonic()
    async with UpdatePublisher(
        kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, partitions
    ) as publisher:
        await publisher.publish(sim.warmup())
        for n, chunk in enumerate(sim.updates(2000)):
            await publisher.publish(chunk)
            await asyncio.sleep(0.1)  # ~20,000 updates/s
            if not killed and n >= 40:  # a third of the way through
                await publisher.flush()
                victim = _replica_names("detector-test")[0]
                ray.kill(ray.get_actor(victim[0], namespace=victim[1]), no_restart=True)
                killed = True
    assert killed

    deadline = time.monotonic() + 240
    missing: list[scenario.Expected] = expected
    while time.monotonic() < deadline:
        missing, _ = scenario.compare(expected, await stored(db, tenant_ids))
        if not missing:
            break
        await asyncio.sleep(1)
    await asyncio.sleep(5)  # let the replayed tail settle; it must add nothing
    missing, unexpected = scenario.compare(expected, await stored(db, tenant_ids))
    assert missing == [], f"lost after {time.monotonic() - started:.0f}s: {missing}"
    assert unexpected == []
    async with db.connection() as conn:
        opened = await conn.fetchval("SELECT count(*) FROM conflict_events WHERE event = 'opened'")
        conflicts = await conn.fetchval("SELECT count(*) FROM conflicts")
        tenant = await conn.fetchval("SELECT count(*) FROM conflicts WHERE tenant_id IS NOT NULL")
    # each conflict opened once (global observations raise no events)
    assert conflicts == len([e for e in expected if not e.resolved])
    assert opened == tenant
    replicas = _replica_names("detector-test")
    assert len(replicas) == 2 and victim not in replicas  # Serve replaced the killed one
    serve.delete("detector-test")
