"""Session stats throughput: one replica against two; the windowing cost of the two stages.

Phases (``--phases``, default all):

* ``cpu``: the windowing work alone, in this process, no Kafka: the previous
  design's one :class:`WindowStream` over every partition (the baseline)
  against the partial stage (a stream per partition, rows split and encoded
  per session-windows partition) plus the merge (decode, merge, no features);
* ``replicas``: simulated updates pre-loaded into the embedded broker, then 1
  and 2 session-stats worker processes (Redis checkpoints as deployed) read
  them: updates/s from the workers' start until every session-windows
  partition has written the features of the last full window.

Ends with one JSON line. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.flaps.feature_store import offline_dir
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.local.kafka import EmbeddedKafka
from bgp_orchestrator.local.ports import free_port
from bgp_orchestrator.local.redis import EmbeddedRedis
from bgp_orchestrator.sessionstats import partials as wire
from bgp_orchestrator.sessionstats.merge import SessionMerger
from bgp_orchestrator.sessionstats.stream import WindowStream
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.stream import Simulation
from bgp_orchestrator.simulation.world import build

PARTITIONS = 8
WINDOW_S = 10  # event time: the simulator's rate below spreads the stream over ~40 windows
RATE = 2_000.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def simulated(total: int, peers: int, prefixes: int) -> list[Update]:
    world = build(seed=1, peers=peers, prefixes=prefixes, tenant_prefixes=10)
    sim = Simulation(world, total=total, rate=RATE, incidents=0, seed=3)
    out: list[Update] = []  # no warm-up: it is every peer's full table
    for chunk in sim.updates():
        out.extend(chunk)
    return out


# --- cpu ----------------------------------------------------------------------------


def cpu_phase(stream: list[Update]) -> dict[str, float]:
    groups = codec.split_by_partition(stream, PARTITIONS)
    counted = sum(len(g) for g in groups.values())

    started = time.perf_counter()
    single = WindowStream(WINDOW_S, 1.0)
    for p, updates in groups.items():
        for offset in range(0, len(updates), 500):
            single.offer(p, offset, updates[offset : offset + 500], 0.0)
    single.advance([], 2.0 * WINDOW_S)  # caught up: the clock closes the last window
    baseline = counted / (time.perf_counter() - started)

    started = time.perf_counter()
    records: list[list[bytes]] = [[] for _ in range(PARTITIONS)]
    for p, updates in groups.items():
        ws = WindowStream(WINDOW_S, 1.0, partial=True)
        for offset in range(0, len(updates), 500):
            ws.offer(p, offset, updates[offset : offset + 500], 0.0)
            for window in ws.advance([p], 0.0):
                for t, rows in enumerate(wire.split_rows(window.rows, PARTITIONS)):
                    records[t].append(
                        wire.encode_window(p, PARTITIONS, window.start, WINDOW_S, rows)
                    )
    partial_s = time.perf_counter() - started
    started = time.perf_counter()
    for values in records:
        merger = SessionMerger(WINDOW_S)
        for offset, value in enumerate(values):
            merger.offer(offset, wire.decode(value))
            merger.ready()
    merge_s = time.perf_counter() - started
    return {
        "single_stream_updates_s": round(baseline),
        "partial_stage_updates_s": round(counted / partial_s),
        "merge_stage_s": round(merge_s, 2),
        "two_stage_updates_s": round(counted / (partial_s + merge_s)),
    }


# --- replicas -----------------------------------------------------------------------


class Dropped:
    async def submit(self, points: Sequence[MetricPoint]) -> None:
        return None


async def replica(bootstrap: str, redis_url: str, name: str) -> None:
    """One worker (``--replica``): settings from the environment, runs until killed."""
    import redis.asyncio as aioredis

    from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
    from bgp_orchestrator.sessionstats import SessionStatsWorker

    client = aioredis.from_url(redis_url)
    worker = SessionStatsWorker(
        Settings(),
        Dropped(),
        bootstrap,
        name=name,
        grace_s=1.0,
        checkpoints=lambda group, topic: RedisCheckpoints(client, group, topic),
    )
    await worker.run(asyncio.Event())


def replicas_phase(
    n: int, bootstrap: str, redis_url: str, work: Path, topic: str, last_window: int, total: int
) -> dict[str, float]:
    run = uuid.uuid4().hex[:6]
    settings = Settings(
        data_dir=work / f"replicas-{n}-{run}",
        kafka_topic=topic,
        session_stats_group=f"stats-{run}",
        session_windows_topic=f"windows-{run}",
        session_merge_group=f"merge-{run}",
        kafka_partitions=PARTITIONS,
        flap_window_s=WINDOW_S,
    )
    env = {
        **os.environ,
        "BGPO_DATA_DIR": str(settings.data_dir),
        "BGPO_KAFKA_TOPIC": topic,
        "BGPO_SESSION_STATS_GROUP": settings.session_stats_group,
        "BGPO_SESSION_WINDOWS_TOPIC": settings.session_windows_topic,
        "BGPO_SESSION_MERGE_GROUP": settings.session_merge_group,
        "BGPO_KAFKA_PARTITIONS": str(PARTITIONS),
        "BGPO_FLAP_WINDOW_S": str(WINDOW_S),
        "BGPO_SESSION_STATS_NICE": "0",
    }
    wanted = {
        offline_dir(settings) / f"live-{last_window}-{settings.session_merge_group}-p{t}.parquet"
        for t in range(PARTITIONS)
    }
    started = time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--replica", bootstrap, redis_url, f"r{i}"], env=env
        )
        for i in range(n)
    ]
    try:
        while not all(path.exists() for path in wanted):
            if any(c.poll() is not None for c in children):
                raise SystemExit("a replica exited")
            if time.monotonic() - started > 900:
                raise SystemExit("the replicas did not finish in 15 minutes")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        for c in children:
            c.kill()
            c.wait()
    return {"replicas": n, "seconds": round(elapsed, 1), "updates_s": round(total / elapsed)}


async def load(bootstrap: str, topic: str, stream: list[Update]) -> None:
    await ensure_topics(bootstrap, topic, f"{topic}.dlq", PARTITIONS)
    async with UpdatePublisher(bootstrap, topic, f"{topic}.dlq", PARTITIONS) as publisher:
        for i in range(0, len(stream), 10_000):
            await publisher.publish(stream[i : i + 10_000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=400_000)
    parser.add_argument("--peers", type=int, default=1_000)
    parser.add_argument("--prefixes", type=int, default=20_000)
    parser.add_argument("--phases", default="cpu,replicas")
    parser.add_argument("--replica", nargs=3, metavar=("BOOTSTRAP", "REDIS", "NAME"))
    args = parser.parse_args()
    if args.replica:
        asyncio.run(replica(*args.replica))
        return
    phases = set(args.phases.split(","))
    log(f"simulating {args.updates:,} updates ({args.peers:,} peers)")
    stream = simulated(args.updates, args.peers, args.prefixes)
    result: dict[str, Any] = {"benchmark": "session_stats", "updates": len(stream)}
    if "cpu" in phases:
        result["cpu"] = cpu_phase(stream)
        log(f"cpu: {result['cpu']}")
    if "replicas" in phases:
        work = Path(tempfile.mkdtemp(prefix="bgpo-bench-stats-"))
        settings = Settings(
            data_dir=work, embedded_kafka_port=free_port(), embedded_redis_port=free_port()
        )
        broker, redis = EmbeddedKafka(settings), EmbeddedRedis(settings)
        broker.start()
        redis.start()
        try:
            topic = f"updates-{uuid.uuid4().hex[:6]}"
            log("loading the broker")
            started = time.perf_counter()
            asyncio.run(load(broker.url, topic, stream))
            # what a second topic of the raw updates keyed by session would pay again
            result["publish_updates_s"] = round(len(stream) / (time.perf_counter() - started))
            log(f"publish: {result['publish_updates_s']:,} updates/s")
            newest = max(u.timestamp for u in stream)
            last_window = int(newest // WINDOW_S) * WINDOW_S - WINDOW_S
            result["replicas"] = []
            for n in (1, 2):
                figures = replicas_phase(
                    n, broker.url, redis.url, work, topic, last_window, len(stream)
                )
                log(f"replicas: {figures}")
                result["replicas"].append(figures)
        finally:
            redis.stop()
            broker.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
