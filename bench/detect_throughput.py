"""Detection throughput and latency on the real path: Kafka -> Serve detectors -> PostgreSQL.

    ./dev bench-detect                       # 2,000,000 updates, 80,000 peers
    .venv/bin/python bench/detect_throughput.py --updates 500000   # a quicker run

Builds a simulated world (80,000 peers, 100,000 prefixes, three tenants with
upstreams, ROAs and AS relationships), seeds it into an embedded PostgreSQL,
and measures, in one run:

1. single process: the same detectors over the same stream, in memory (no
   Kafka, no database) - the baseline whose ratio is the cost of distribution;
2. saturation with 2 and with 1 detector replica: the stream pre-loaded into
   Kafka, drained as fast as the replicas go (updates/s, scale-out ratio);
3. latency at a fixed offered load of 20,000 updates/s, and at saturation
   (a producer going flat out): produce time of each incident to the time its
   conflict row was created in PostgreSQL, p50 and p99;
4. recall and precision of every phase on the labelled incidents, and the
   peak RSS of the detector processes.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bgp_orchestrator.detection import scenario
from bgp_orchestrator.detection.pipeline import Pipeline
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.local.ports import free_port, free_ports_env
from bgp_orchestrator.local.services import embedded_services, endpoints
from bgp_orchestrator.reference import asrel
from bgp_orchestrator.reference import vrps as vrp_files
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.setup import seed_tenants, write_reference_files
from bgp_orchestrator.simulation.stream import Simulation
from bgp_orchestrator.simulation.world import World, build
from bgp_orchestrator.storage import conflicts as conflict_store
from bgp_orchestrator.storage import migrate

PARTITIONS = 8


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Phase:
    name: str
    updates: int
    seconds: float
    recall: float
    precision: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class RssSampler:
    """Peak resident memory of the detector replica processes."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if any(
                        "ServeReplica:bench-detect" in part for part in proc.info["cmdline"] or []
                    ):
                        self.peak_mb = max(self.peak_mb, proc.memory_info().rss / 2**20)
                except psutil.Error:
                    continue
            self._stop.wait(2.0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def simulation(world: World, total: int, incidents: int, seed: int) -> Simulation:
    return Simulation(world, total=total, rate=20_000.0, incidents=incidents, seed=seed)


def single_process(
    world: World,
    ref_json: dict[str, Any],
    vrp_path: Path,
    rel_path: Path,
    total: int,
    incidents: int,
) -> tuple[Phase, int]:
    ref = scenario.reference_from_json(ref_json, "bench")
    ref.vrps = vrp_files.VrpIndex(vrp_files.load(vrp_path))
    ref.relationships = asrel.load(rel_path)
    sim = simulation(world, total, incidents, seed=101)
    chunks = [sim.warmup(), *sim.updates(2000)]
    count = sum(len(c) for c in chunks)
    pipeline = Pipeline(ref)
    conflicts = []
    started = time.perf_counter()
    for chunk in chunks:
        conflicts.extend(pipeline.process(chunk).conflicts)
    seconds = time.perf_counter() - started
    recall, precision = score(sim.expected(), scenario.distinct(conflicts))
    return Phase("single process, in memory", count, seconds, recall, precision, []), count


def score(expected: list[scenario.Expected], got: list[scenario.Expected]) -> tuple[float, float]:
    missing, unexpected = scenario.compare(expected, got)
    found = len(expected) - len(missing)
    recall = found / len(expected) if expected else 1.0
    precision = (len(got) - len(unexpected)) / len(got) if got else 1.0
    return recall, precision


async def stored(dsn: str, tenant_ids: dict[int, int]) -> list[scenario.Expected]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conflict_store.as_expected(conn, tenant_ids)
    finally:
        await conn.close()


async def created_times(dsn: str) -> dict[str, float]:
    """prefix -> when its first conflict row was created (epoch seconds)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT prefix::text AS prefix, min(extract(epoch FROM created_at))"
            " AS t FROM conflicts GROUP BY 1"
        )
    finally:
        await conn.close()
    return {r["prefix"]: float(r["t"]) for r in rows}


async def reset(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE conflicts CASCADE")
    finally:
        await conn.close()


class LagReader:
    """Records of a topic the group has not committed yet (one long-lived consumer that
    never subscribes, so it only reads the group's committed offsets)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )

    async def __aenter__(self) -> LagReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def lag(self) -> int:
        ends = await self.consumer.end_offsets(self.tps)
        total = 0
        for tp in self.tps:
            total += ends[tp] - (await self.consumer.committed(tp) or 0)
        return total


class Bench:
    def __init__(
        self, settings: Settings, world: World, tenant_ids: dict[int, int], env: dict[str, str]
    ) -> None:
        self.settings = settings
        self.world = world
        self.tenant_ids = tenant_ids
        self.env = env
        self.dsn = endpoints(settings).database_url
        self.bootstrap = endpoints(settings).kafka_bootstrap_servers

    def deploy(self, replicas: int, topic: str, group: str) -> None:
        from ray import serve

        from deployments.detector import Detector

        env = {
            **self.env,
            "BGPO_KAFKA_TOPIC": topic,
            "BGPO_KAFKA_DLQ_TOPIC": topic + ".dlq",
            "BGPO_DETECTOR_GROUP": group,
        }
        app = Detector.options(  # type: ignore[attr-defined]
            num_replicas=replicas,
            ray_actor_options={"num_cpus": 0.5, "runtime_env": {"env_vars": env}},
        ).bind()
        serve.run(app, name="bench-detect", route_prefix=None)

    def undeploy(self) -> None:
        from ray import serve

        serve.delete("bench-detect")

    async def topic(self) -> tuple[str, str]:
        run = uuid.uuid4().hex[:6]
        topic, group = f"bench-{run}", f"bench-group-{run}"
        await ensure_topics(self.bootstrap, topic, topic + ".dlq", PARTITIONS)
        return topic, group

    async def produce(
        self, topic: str, sim: Simulation, rate: float | None, sent: dict[str, float]
    ) -> int:
        """Publish the stream (at ``rate`` updates/s, or flat out); records when each
        incident prefix was handed to Kafka."""
        # the incidents' own update objects (a prefix may also appear in the background)
        incident_updates = {id(u): i.prefix for i in sim.plan() for u in i.updates}
        count = 0
        async with UpdatePublisher(
            self.bootstrap, topic, topic + ".dlq", PARTITIONS, batch_size=1000, linger_s=0.005
        ) as publisher:
            started = time.monotonic()
            # lazily: generating the whole stream first (~4 s for 600,000 updates) would
            # put the paced producer that far behind its clock, then publish in a burst
            for chunk in itertools.chain([sim.warmup()], sim.updates(1000)):
                await publisher.publish(chunk)
                now = time.time()
                for u in chunk:
                    prefix = incident_updates.get(id(u))
                    if prefix is not None and prefix not in sent:
                        sent[prefix] = now
                count += len(chunk)
                if rate:
                    delay = started + count / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
        return count

    async def drain(self, topic: str, group: str, timeout_s: float = 900) -> tuple[float, int]:
        """Wait until the group's lag is zero. Returns the seconds from the first
        committed progress to the end, and the records still lagging at that first
        progress (so the detectors' start-up is not counted as throughput)."""
        deadline = time.monotonic() + timeout_s
        first: tuple[float, int] | None = None
        initial: int | None = None
        async with LagReader(self.bootstrap, topic, group) as reader:
            while time.monotonic() < deadline:
                lag = await reader.lag()
                if initial is None:
                    initial = lag
                if first is None and lag < initial:
                    first = (time.monotonic(), lag)
                if lag == 0:
                    if first is None:
                        return 0.0, 0
                    return time.monotonic() - first[0], first[1]
                await asyncio.sleep(0.2)
        raise SystemExit(f"detectors did not drain {topic} within {timeout_s}s")

    async def wait_assigned(self, replicas: int) -> None:
        """Until every replica holds partitions and together they hold them all (a
        rebalance during the measurement would be counted as latency)."""
        from ray import serve

        handle = serve.get_app_handle("bench-detect")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            held: dict[str, list[int]] = {}
            for _ in range(4 * replicas):
                stats = await handle.stats.remote()
                held[stats["name"]] = stats["partitions"]
            complete = {p for parts in held.values() for p in parts} == set(range(PARTITIONS))
            if len(held) == replicas and all(held.values()) and complete:
                await asyncio.sleep(1.0)  # and stays so
                return
            await asyncio.sleep(0.5)
        raise SystemExit("the detectors never shared the partitions")

    async def saturation(self, replicas: int, total: int, incidents: int) -> Phase:
        await reset(self.dsn)
        topic, group = await self.topic()
        sim = simulation(self.world, total, incidents, seed=101)
        log(f"  pre-loading {total:,} updates into Kafka")
        count = await self.produce(topic, sim, None, {})
        log(f"  draining with {replicas} replica(s)")
        self.deploy(replicas, topic, group)
        await self.drain(topic, group)
        # from the first batch any replica took to the last one it finished: the
        # group's start-up is not throughput
        stats = await self.replica_stats(replicas)
        seconds = max(x["last_batch_at"] for x in stats) - min(x["first_batch_at"] for x in stats)
        recall, precision = score(sim.expected(), await stored(self.dsn, self.tenant_ids))
        self.undeploy()
        name = f"saturation, {replicas} replica(s), pre-loaded"
        return Phase(name, count, seconds, recall, precision, [])

    async def replica_stats(self, replicas: int) -> list[dict[str, Any]]:
        from ray import serve

        handle = serve.get_app_handle("bench-detect")
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(50):
            stats = await handle.stats.remote()
            seen[stats["name"]] = stats
            if len(seen) == replicas:
                break
        return list(seen.values())

    async def live(
        self, replicas: int, total: int, incidents: int, rate: float | None, label: str
    ) -> Phase:
        await reset(self.dsn)
        topic, group = await self.topic()
        self.deploy(replicas, topic, group)
        await self.wait_assigned(replicas)  # the clock starts with the group in place
        # Two seconds of background traffic first: the offered load is steady when the
        # measured stream starts (an idle consumer's first fetch waits on the broker).
        warm = simulation(self.world, int(2 * (rate or 20_000)), 2, seed=303)
        await self.produce(topic, warm, rate or 20_000, {})  # its incidents prime the writes
        sim = simulation(self.world, total, incidents, seed=202)
        sent: dict[str, float] = {}
        started = time.monotonic()
        produce_started = time.time()
        count = await self.produce(topic, sim, rate, sent)
        await self.drain(topic, group)
        seconds = time.monotonic() - started
        created = await created_times(self.dsn)
        latencies = [(created[p] - t) * 1000 for p, t in sent.items() if p in created]
        slowest = sorted(
            ((created[p] - t) * 1000, t - produce_started, p)
            for p, t in sent.items()
            if p in created
        )[-3:]
        log(
            "  slowest incidents (ms, s after start, prefix): "
            + "; ".join(f"{ms:.0f} ms at {at:.1f}s {p}" for ms, at, p in slowest)
        )
        for stats in await self.replica_stats(replicas):
            log(
                f"  {stats['name']}: last checkpoint {stats['checkpoint_ms']} ms, slow batches "
                + ", ".join(
                    f"{ms:.0f} ms ({n} records; {det:.0f} ms detecting, {db:.0f} ms "
                    f"storing) at {t - produce_started:.1f}s"
                    for t, ms, n, det, db in stats["slow_batches"]
                )
            )
        expected = warm.expected() + sim.expected()
        recall, precision = score(expected, await stored(self.dsn, self.tenant_ids))
        self.undeploy()
        return Phase(label, count, seconds, recall, precision, latencies)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import serve

    work = Path(tempfile.mkdtemp(prefix="bgpo-bench-detect-"))
    ports = free_ports_env()
    settings = Settings(data_dir=work, **{k[5:].lower(): int(v) for k, v in ports.items()})
    services = embedded_services(settings)
    for svc in services:
        svc.start()
    ep = endpoints(settings)
    try:
        await asyncio.to_thread(migrate.upgrade, ep.database_url)
        log(f"building the world: {args.peers:,} peers, {args.prefixes:,} prefixes")
        # 150 prefixes per tenant: enough fresh ones for 400 latency samples
        world = build(seed=1, peers=args.peers, prefixes=args.prefixes, tenant_prefixes=150)
        vrp_path, rel_path = write_reference_files(world, work / "reference")
        conn = await asyncpg.connect(ep.database_url)
        try:
            ids = await seed_tenants(conn, world)
        finally:
            await conn.close()
        tenant_ids = {t.id: ids[t.slug] for t in world.tenants}
        # The world is a million long-lived objects: keep the producer's collections short.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 1_000_000)
        env = {
            **ep.as_env(),
            "BGPO_DATA_DIR": str(work),
            "BGPO_RPKI_VRP_FILE": str(vrp_path),
            "BGPO_AS_RELATIONSHIPS_FILE": str(rel_path),
            "BGPO_GLOBAL_OBSERVATIONS": "true",
            "BGPO_KAFKA_PARTITIONS": str(PARTITIONS),
        }

        log(f"single process, in memory: {args.updates:,} updates")
        single, _ = single_process(
            world, world.reference_json(), vrp_path, rel_path, args.updates, args.incidents
        )
        log(
            f"  {single.rate:,.0f} updates/s, recall {single.recall:.3f}, "
            f"precision {single.precision:.3f}"
        )

        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
        bench = Bench(settings, world, tenant_ids, env)
        phases: list[Phase] = [single]
        with RssSampler() as rss:
            log("saturation, 2 replicas")
            two = await bench.saturation(2, args.updates, args.incidents)
            phases.append(two)
            log("saturation, 1 replica")
            one = await bench.saturation(1, args.updates, args.incidents)
            phases.append(one)
            log(f"fixed load: {args.rate:,.0f} updates/s for {args.latency_updates:,} updates")
            fixed = await bench.live(
                2,
                args.latency_updates,
                args.latency_incidents,
                args.rate,
                f"live at {args.rate:,.0f}/s, 2 replicas",
            )
            phases.append(fixed)
            log("saturation with a live producer (latency under overload)")
            flat = await bench.live(
                2,
                args.latency_updates,
                args.latency_incidents,
                None,
                "live, producer flat out, 2 replicas",
            )
            phases.append(flat)
        serve.shutdown()
        ray.shutdown()
    finally:
        for svc in reversed(services):
            svc.stop()

    print()
    print(
        f"{'phase':<44}{'updates':>11}{'seconds':>9}{'updates/s':>12}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'recall':>8}{'precision':>10}"
    )
    for p in phases:
        p50, p99 = p.percentile(50), p.percentile(99)
        print(
            f"{p.name:<44}{p.updates:>11,}{p.seconds:>9.1f}{p.rate:>12,.0f}"
            f"{(f'{p50:.0f}' if p50 is not None else '-'):>9}"
            f"{(f'{p99:.0f}' if p99 is not None else '-'):>9}"
            f"{p.recall:>8.3f}{p.precision:>10.3f}"
        )
    scale = two.rate / one.rate if one.rate else 0.0
    distribution = two.rate / single.rate if single.rate else 0.0
    print(
        f"\nscale-out 2 replicas / 1 replica: {scale:.2f}x   "
        f"2 replicas / single process: {distribution:.2f}x   "
        f"peak detector RSS: {rss.peak_mb:.0f} MB"
    )
    per_replica = one.rate
    print(sizing(per_replica))
    return {
        "updates": args.updates,
        "peers": args.peers,
        "updates_per_s": round(two.rate),
        "updates_per_s_1_actor": round(one.rate),
        "scale_out_ratio": round(scale, 2),
        "single_process_updates_per_s": round(single.rate),
        "distributed_vs_single_ratio": round(distribution, 3),
        "p50_ms_at_20k": fixed.percentile(50),
        "p99_ms_at_20k": fixed.percentile(99),
        "p50_ms_at_saturation": flat.percentile(50),
        "p99_ms_at_saturation": flat.percentile(99),
        "live_saturation_updates_per_s": round(flat.rate),
        "recall": min(p.recall for p in phases),
        "precision": min(p.precision for p in phases),
        "peak_rss_mb": round(rss.peak_mb),
        "cpus": os.cpu_count(),
    }


def sizing(per_replica: float) -> str:
    """How many replicas and partitions the whole public feed at 80,000 peers would need."""
    # RIS and RouteViews each carry about 6,000 updates/s on average from ~1,500
    # peers together (BGPalerter's figure for RIS); bursts run 10x the average.
    average = 2 * 6_000 * (80_000 / 1_500)
    burst = 10 * average
    replicas_avg = max(1, int(-(-average // per_replica)))
    replicas_burst = max(1, int(-(-burst // per_replica)))
    return (
        f"sizing: RIS + RouteViews scaled to 80,000 peers is ~{average:,.0f} updates/s on "
        f"average and ~{burst:,.0f} in bursts; at {per_replica:,.0f} updates/s per replica "
        f"that is {replicas_avg} replicas for the average and {replicas_burst} for bursts "
        f"(partitions: at least {max(64, 2 * replicas_burst)}, a multiple of the replicas)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2_000_000)
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--peers", type=int, default=80_000)
    parser.add_argument("--prefixes", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20_000.0, help="fixed offered load")
    parser.add_argument("--latency-updates", type=int, default=600_000)
    parser.add_argument(
        "--latency-incidents",
        type=int,
        default=400,
        help="incidents of the latency runs (each one latency sample)",
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
