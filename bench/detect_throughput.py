"""Detection throughput and latency: the simulator straight into Kafka, and the path users take.

    ./dev bench-detect                                   # every phase, full size
    .venv/bin/python bench/detect_throughput.py --updates 500000   # a quicker run
    .venv/bin/python bench/detect_throughput.py --phases ingest-path --messages 100000
    .venv/bin/python bench/detect_throughput.py --phases storm --storm-pairs 200000

``--phases`` picks any of ``single,saturation,live,ingest-path,storm,rules`` (default all);
a phase that does not run reports null keys.

Simulated phases (a simulated world: 80,000 peers, 100,000 prefixes, three tenants
with upstreams, ROAs and AS relationships, seeded into an embedded PostgreSQL):

1. ``single``: the same detectors over the same stream, in memory (no Kafka, no
   database) - the baseline whose ratio is the cost of distribution;
2. ``saturation``: 2 and 1 detector replicas (Serve on a Ray of this process's own),
   the stream pre-loaded into Kafka, drained as fast as the replicas go (updates/s,
   scale-out ratio);
3. ``live``: latency at a fixed offered load of 20,000 updates/s, and at saturation
   (a producer going flat out): produce time of each incident to the time its
   conflict row was created in PostgreSQL, p50 and p99;
   with recall and precision of every phase on the labelled incidents, and the peak
   RSS of the detector processes.

``rules`` (in process, no stack): the ``single`` measurement twice over, with and
without ASPA verification (``--aspa-share`` % of the world's customer ASes publish an
ASPA listing their providers) and per-prefix neighbours on every tenant prefix,
alternated and best of two each: ``rules_vs_plain``, the throughput ratio.

The path users take (a RIS Live JSONL file from ``bench/ris_stream.py``: 80,000 peers
on 24 collectors, 1,000 monitored prefixes of 5 tenants, 100 labelled hijacks, the
last line one of them; generated once into ``--stream-dir`` and reused):

4. ``ingest-path``: in-process baseline first - the file parsed with the RIS Live
   parser and run through the detection pipeline in this process (no Kafka, no
   database), messages/s, recall and precision. Then ``bgpo up`` on free ports with
   default settings (global observations on), the tenants, their ASNs and the
   monitored prefixes created through the HTTP API (X-Tenant header), a wait until
   every detector replica reports the inventory's reference version (Serve handle
   ``stats()``), and ``bgpo ingest replay FILE`` as a subprocess in a session of its
   own (as from a user's terminal: a scheduling group apart from the benchmark's
   sampling). Measured from the
   first record published (the topic's end offsets move; polled every 50 ms) to the
   ``created_at`` of the last expected conflict row in PostgreSQL:
   ``ingest_path_msgs_per_s`` (messages / that time), the replay command's own
   duration and rate, recall (labelled hijacks stored) and precision (tenant
   conflicts of the hijack types that match a label / all of them), detector
   replica restarts (replica ids from Ray Serve's REST API beyond the initial
   ones, sampled every second), and the detectors' consumer lag sampled every
   0.5 s: records (committed offsets of group ``bgpo-detectors`` against the end
   offsets of ``bgp.updates``) and seconds. **Lag in seconds** of a partition at a
   sample is the age of its oldest record the group has not committed: the sample
   time minus the moment the partition's end offset first went beyond the committed
   offset (end offsets are polled every 0.2 s after the first record, so the age
   reads too low by at most that); the phase's figure is the largest over
   partitions and 0.5 s samples. The drain time is from the replay command's exit
   (all of the file in Kafka) to the first sample with zero lag on every partition.
5. ``storm``: a second file (``ris_stream.py --storm``): the victims' table, normal
   traffic, then one network originating ``--storm-pairs`` unowned prefixes within
   two recorded minutes (a leak / MOAS event the size of the 2015 Telekom Malaysia
   one), hijacks planted during it and one as the last line; replayed the same way
   on a fresh stack with default settings: ``storm_recall``, replica restarts,
   ``storm_max_lag_s``, ``storm_drain_s`` (the storm file's last message in Kafka to
   lag 0), and the rows the conflicts table gained (global and tenant scope).

Both stack phases give up after ``--timeout-min`` minutes from the replay's start:
they then report recall so far, the hijacks not stored and the partitions still
lagging, and the JSON line is printed all the same. The stack is always brought down
(`bgpo down`), also on failure. Ratios are printed against the in-process baseline of
the same file, measured in the same run.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import itertools
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import ris_stream
from bench_stack import Stack

from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.parsers.rislive import parse_line
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
from bgp_orchestrator.storage.database import asyncpg_dsn

PARTITIONS = 8
PHASES = ("single", "saturation", "live", "ingest-path", "storm", "rules")
HIJACK_TYPES = ("exact-prefix-hijack", "sub-prefix-hijack")
LAG_SAMPLE_S = 0.5


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


def with_rules(ref_json: dict[str, Any], rel_path: Path, share: int) -> dict[str, Any]:
    """The world's reference with ASPA objects and per-prefix neighbours: ``share`` % of
    the customer ASes (a stable choice by ASN) publish an ASPA listing their providers
    from the relationship file, and every tenant prefix names its tenant's upstreams
    and peers as its own (the shape an operator monitoring customers' prefixes has)."""
    providers: dict[int, set[int]] = {}
    for line in rel_path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, code = line.split("|")[:3]
        if code == "-1":
            providers.setdefault(int(b), set()).add(int(a))
    aspas = [
        {"customer_asid": customer, "providers": sorted(found)}
        for customer, found in providers.items()
        if customer * 2654435761 % 100 < share
    ]
    neighbours = {int(t["id"]): t.get("neighbors") or {} for t in ref_json["tenants"]}
    prefixes = []
    for p in ref_json["prefixes"]:
        rels = neighbours.get(int(p["tenant_id"]), {})
        prefixes.append(
            {
                **p,
                "upstream_asns": sorted(int(a) for a, r in rels.items() if r == "upstream"),
                "peer_asns": sorted(int(a) for a, r in rels.items() if r == "peer"),
            }
        )
    return {**ref_json, "prefixes": prefixes, "aspas": aspas}


def rules_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Detection throughput with and without ASPA verification and per-prefix neighbours,
    in process on the same simulated stream, alternated twice (best of two each)."""
    work = Path(tempfile.mkdtemp(prefix="bgpo-bench-rules-"))
    log(f"rules: building the world: {args.peers:,} peers, {args.prefixes:,} prefixes")
    world = build(seed=1, peers=args.peers, prefixes=args.prefixes, tenant_prefixes=150)
    vrp_path, rel_path = write_reference_files(world, work / "reference")
    plain = world.reference_json()
    ruled = with_rules(plain, rel_path, args.aspa_share)
    log(f"  {len(ruled['aspas']):,} ASPA objects ({args.aspa_share} % of the customer ASes)")
    best: dict[str, Phase] = {}
    for round_ in (1, 2):
        for name, ref_json in (("plain", plain), ("rules", ruled)):
            phase, _ = single_process(
                world, ref_json, vrp_path, rel_path, args.updates, args.incidents
            )
            log(
                f"  round {round_}, {name}: {phase.rate:,.0f} updates/s, "
                f"recall {phase.recall:.3f}, precision {phase.precision:.3f}"
            )
            if name not in best or phase.rate > best[name].rate:
                best[name] = phase
    ratio = best["rules"].rate / best["plain"].rate
    print(
        f"\nASPA ({args.aspa_share} % of customer ASes) + per-prefix neighbours: "
        f"{best['rules'].rate:,.0f} updates/s against {best['plain'].rate:,.0f} without, "
        f"{ratio:.3f}x (recall {best['rules'].recall:.3f}; precision counts the ASPA "
        f"conflicts the simulator does not label: {best['rules'].precision:.3f})"
    )
    return {
        "rules_updates_per_s": round(best["rules"].rate),
        "plain_updates_per_s": round(best["plain"].rate),
        "rules_vs_plain": round(ratio, 3),
        "rules_recall": round(best["rules"].recall, 3),
    }


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

    def __init__(
        self, bootstrap: str, topic: str, group: str, partitions: int = PARTITIONS
    ) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )

    async def __aenter__(self) -> LagReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def ends(self) -> list[int]:
        """The end offset of each partition."""
        ends = await self.consumer.end_offsets(self.tps)
        return [ends[tp] for tp in self.tps]

    async def positions(self) -> list[tuple[int, int]]:
        """(end offset, committed offset) of each partition."""
        ends = await self.ends()
        return [
            (end, await self.consumer.committed(tp) or 0)
            for end, tp in zip(ends, self.tps, strict=True)
        ]

    async def lag(self) -> int:
        return sum(end - committed for end, committed in await self.positions())


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


# --- the path users take: `bgpo ingest replay` into a stack `bgpo up` started ----------


def ensure_stream(folder: Path, storm: bool, size: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The RIS Live file (and its labels) of this size and seed, generated when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{'storm' if storm else 'ris'}-{size}-table{ris_stream.TABLE}-seed{seed}.jsonl"
    path = folder / name
    labels_file = ris_stream.labels_path(path)
    if path.exists() and labels_file.exists():
        labels = orjson.loads(labels_file.read_bytes())
        log(f"reusing {path} ({labels['messages']:,} messages)")
        return path, labels
    log(f"generating {path} ...")
    started = time.perf_counter()
    if storm:
        labels = ris_stream.generate_storm(path, pairs=size, seed=seed)
    else:
        labels = ris_stream.generate(path, messages=size, seed=seed)
    log(f"  {labels['messages']:,} messages in {time.perf_counter() - started:.0f} s")
    return path, labels


def expected_keys(labels: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """(type, tenant slug, prefix, origin ASN, detail key) -> the hijack's label."""
    out = {}
    for h in labels["hijacks"]:
        e = h["expected"]
        out[(e["type"], e["tenant"], e["prefix"], e["origin_asn"], e["detail_key"])] = h
    return out


def reference_json(labels: dict[str, Any]) -> dict[str, Any]:
    """The labels' inventory as a scenario reference (tenant ids 1..n in label order)."""
    tenants, prefixes = [], []
    for number, tenant in enumerate(labels["tenants"], start=1):
        tenants.append({"id": number, "asns": tenant["asns"]})
        prefixes += [{"tenant_id": number, **p, "announced": True} for p in tenant["prefixes"]]
    return {"tenants": tenants, "prefixes": prefixes}


@dataclass
class InProcess:
    """The file parsed and run through the pipeline in this process: the baseline."""

    messages: int = 0
    updates: int = 0
    seconds: float = 0.0
    recall: float = 0.0
    precision: float = 0.0
    global_keys: int = 0
    tenant_keys: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def in_process(path: Path, labels: dict[str, Any], batch_size: int = 2000) -> InProcess:
    """Every line through ``parse_line`` and one ``Pipeline`` (the reference built from
    the labels as ``single_process`` builds its own), the distinct conflicts scored."""
    ref = scenario.reference_from_json(reference_json(labels), "bench-ingest-path")
    slugs = {n: t["slug"] for n, t in enumerate(labels["tenants"], start=1)}
    pipeline = Pipeline(ref)
    keys: set[str] = set()
    hijacks: set[tuple[Any, ...]] = set()
    result = InProcess()
    global_keys = 0

    def collect(updates: list[Any]) -> None:
        nonlocal global_keys
        result.updates += len(updates)
        for c in pipeline.process(updates).conflicts:
            if c.key in keys:
                continue
            keys.add(c.key)
            if c.tenant_id is None:
                global_keys += 1
            elif c.type.value in HIJACK_TYPES:
                hijacks.add(
                    (c.type.value, slugs[c.tenant_id], c.prefix, c.origin_asn, c.detail_key)
                )

    batch: list[Any] = []
    started = time.perf_counter()
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            result.messages += 1
            try:
                batch.extend(parse_line(line))
            except Malformed:
                continue
            if len(batch) >= batch_size:
                collect(batch)
                batch = []
    collect(batch)
    result.seconds = time.perf_counter() - started
    expected = set(expected_keys(labels))
    result.recall = len(expected & hijacks) / len(expected) if expected else 1.0
    result.precision = len(expected & hijacks) / len(hijacks) if hijacks else 1.0
    result.global_keys, result.tenant_keys = global_keys, len(keys) - global_keys
    return result


async def create_inventory(api_url: str, labels: dict[str, Any]) -> dict[str, int]:
    """Tenants, their ASNs and monitored prefixes through the API, as a user would;
    returns slug -> tenant id."""
    ids: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:

        async def post(path: str, body: dict[str, Any], tenant: str | None = None) -> Any:
            # the development API on loopback: a tenant's admin, or the platform admin
            headers = {"X-Tenant": tenant} if tenant else {"X-Role": "platform-admin"}
            response = await client.post(path, json=body, headers=headers)
            if response.status_code != 201:
                raise SystemExit(f"POST {path} {body} -> {response.status_code}: {response.text}")
            return response.json()

        for tenant in labels["tenants"]:
            slug = tenant["slug"]
            created = await post("/api/v1/tenants", {"slug": slug, "name": tenant["name"]})
            ids[slug] = created["id"]
            for asn in tenant["asns"]:
                await post("/api/v1/asns", {"asn": asn, "name": f"{tenant['name']} AS{asn}"}, slug)
        in_flight = asyncio.Semaphore(8)

        async def prefix(slug: str, body: dict[str, Any]) -> None:
            async with in_flight:
                await post("/api/v1/prefixes", body, slug)

        await asyncio.gather(
            *(prefix(t["slug"], p) for t in labels["tenants"] for p in t["prefixes"])
        )
    return ids


class Detectors:
    """The stack's detector replicas through a Serve handle: their reference version and
    statistics. A ``python`` subprocess with the stack's environment joins the stack's Ray
    cluster as a driver and asks (``probe_detectors``), so this process never connects to
    a Ray cluster (the simulated phases start their own, and Serve caches its client)."""

    def __init__(self, stack: Stack, replicas: int) -> None:
        self.stack = stack
        self.replicas = replicas

    async def _probe(self, version: int, timeout_s: float) -> tuple[bool, dict[str, Any]]:
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from detect_throughput import probe_detectors; probe_detectors(sys.argv[1:])"
        )
        argv = [self.stack.ray_address, str(self.replicas), str(version), str(timeout_s)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, *argv, env=self.stack.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s + 60)
        lines = out.decode(errors="replace").strip().splitlines()
        if not lines or not lines[-1].startswith("{"):
            raise RuntimeError(f"the detector probe failed: {err.decode(errors='replace')[-2000:]}")
        return proc.returncode == 0, json.loads(lines[-1])

    async def stats(self) -> dict[str, dict[str, Any]]:
        """name -> stats() of the replicas that answer."""
        return (await self._probe(-1, 60))[1]

    async def wait_reference(self, dsn: str, timeout_s: float = 180) -> float:
        """Until every replica has loaded the inventory's reference version; seconds waited."""
        conn = await asyncpg.connect(dsn)
        try:
            version = await conn.fetchval("SELECT version FROM reference_version WHERE id = 1")
        finally:
            await conn.close()
        started = time.monotonic()
        loaded, stats = await self._probe(int(version), timeout_s)
        if not loaded:
            seen = {name: s["reference_version"] for name, s in stats.items()}
            raise SystemExit(f"the detectors did not load reference version {version}: {seen}")
        return time.monotonic() - started


def probe_detectors(argv: list[str]) -> None:
    """Inside a subprocess: ``ADDRESS REPLICAS VERSION TIMEOUT_S``. Prints one JSON line,
    replica name -> stats(), once every replica reports reference ``db<VERSION>-...``
    (at once when VERSION < 0); exits 1 if that does not happen within the timeout."""
    import ray
    from ray import serve

    address, replicas, version, timeout_s = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    handle = serve.get_app_handle("detector")
    deadline = time.monotonic() + timeout_s
    seen: dict[str, dict[str, Any]] = {}
    ok = False
    while not ok and time.monotonic() < deadline:
        for _ in range(4 * replicas):
            try:
                stats = handle.stats.remote().result(timeout_s=10)
            except Exception as exc:  # a replica being replaced: say so, keep asking
                print(f"stats() failed: {exc!r}"[:300], file=sys.stderr)
                continue
            seen[stats["name"]] = stats
        wanted = f"db{version}-"
        ok = len(seen) >= replicas and (
            version < 0 or all(s["reference_version"].startswith(wanted) for s in seen.values())
        )
        if not ok:
            time.sleep(0.5)
    print(json.dumps(seen))
    ray.shutdown()
    sys.exit(0 if ok else 1)


class ReplicaWatch:
    """Serve replicas per deployment from the dashboard's REST API; replacements counted
    as replica ids beyond the ones present at the start."""

    def __init__(self, dashboard_url: str, headers: dict[str, str]) -> None:
        self.client = httpx.AsyncClient(base_url=dashboard_url, headers=headers, timeout=10)
        self.initial: dict[str, set[str]] = {}
        self.seen: dict[str, set[str]] = {}
        self.states: dict[str, str] = {}  # replica id -> last state
        self.events: list[str] = []
        self.started = time.time()

    async def sample(self) -> None:
        try:
            response = await self.client.get("/api/serve/applications/")
            apps = response.json().get("applications") or {}
        except (httpx.HTTPError, ValueError) as exc:
            self._event(f"serve status failed: {exc!r}")
            return
        for app_name, app in apps.items():
            for dep_name, dep in (app.get("deployments") or {}).items():
                name = f"{app_name}/{dep_name}"
                ids = self.seen.setdefault(name, set())
                for replica in dep.get("replicas") or []:
                    rid, state = replica["replica_id"], replica.get("state", "?")
                    if rid not in ids and name in self.initial:
                        self._event(f"{name}: new replica {rid} ({state})")
                    ids.add(rid)
                    if self.states.get(rid) != state:
                        self.states[rid] = state
                status = dep.get("status")
                if status and self.states.get(name) != status:
                    if name in self.initial:
                        self._event(f"{name}: {status} {(dep.get('message') or '')[:300]}")
                    self.states[name] = status

    def _event(self, text: str) -> None:
        self.events.append(f"+{time.time() - self.started:6.1f}s {text}")

    def mark_initial(self) -> None:
        self.initial = {name: set(ids) for name, ids in self.seen.items()}
        self.started = time.time()

    def restarts(self, name: str = "detector/Detector") -> int:
        return len(self.seen.get(name, set()) - self.initial.get(name, set()))

    def replicas(self, name: str = "detector/Detector") -> int:
        return len(self.initial.get(name, set()))

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class LagSample:
    at: float
    records: int
    seconds: float
    partitions: list[tuple[int, int, float]]  # (end, committed, age s) per partition


class LagWatch:
    """The detectors' consumer lag in records and in seconds (see the module docstring:
    the age of the oldest record not committed, from the history of end offsets, which
    ``track_ends`` keeps at a finer step than the 0.5 s samples)."""

    def __init__(self, reader: LagReader) -> None:
        self.reader = reader
        self.times: list[list[float]] = [[] for _ in reader.tps]
        self.ends: list[list[int]] = [[] for _ in reader.tps]
        self.max_records = 0
        self.max_seconds = 0.0
        self.last: LagSample | None = None
        self.first_move: float | None = None  # the first record published after the start

    def _record(self, now: float, ends: list[int]) -> None:
        for number, end in enumerate(ends):
            if not self.ends[number] or end > self.ends[number][-1]:
                if self.ends[number] and self.first_move is None:
                    self.first_move = now
                self.times[number].append(now)
                self.ends[number].append(end)

    async def track_ends(self, first_s: float = 0.05, then_s: float = 0.2) -> None:
        """Keeps the end offsets' history (and so the first publish) until cancelled:
        every 50 ms until the first record, every 0.2 s after (at 50 ms throughout the
        sampling took a fifth of a core from the replay)."""
        while True:
            self._record(time.time(), await self.reader.ends())
            await asyncio.sleep(first_s if self.first_move is None else then_s)

    async def sample(self) -> LagSample:
        positions = await self.reader.positions()
        now = time.time()
        self._record(now, [end for end, _ in positions])
        parts = []
        for number, (end, committed) in enumerate(positions):
            times, ends = self.times[number], self.ends[number]
            age = 0.0
            if committed < end:
                first = bisect.bisect_right(ends, committed)  # the first time end > committed
                age = now - times[min(first, len(times) - 1)]
            parts.append((end, committed, age))
        sample = LagSample(
            now, sum(e - c for e, c, _ in parts), max((a for *_, a in parts), default=0.0), parts
        )
        self.max_records = max(self.max_records, sample.records)
        self.max_seconds = max(self.max_seconds, sample.seconds)
        self.last = sample
        return sample


class ConflictWatch:
    """The expected tenant conflicts as they are stored, with their ``created_at``."""

    def __init__(self, dsn: str, labels: dict[str, Any], tenant_ids: dict[str, int]) -> None:
        self.dsn = dsn
        self.expected = expected_keys(labels)
        self.slugs = {v: k for k, v in tenant_ids.items()}
        self.found: dict[tuple[Any, ...], float] = {}
        self.unexpected: set[tuple[Any, ...]] = set()
        self.conn: asyncpg.Connection | None = None

    async def sample(self) -> None:
        if self.conn is None:
            self.conn = await asyncpg.connect(self.dsn)
        rows = await self.conn.fetch(
            "SELECT type, tenant_id, prefix::text AS prefix, origin_asn, detail_key, "
            "extract(epoch FROM created_at)::float8 AS created FROM conflicts "
            "WHERE tenant_id IS NOT NULL AND type = ANY($1::text[])",
            list(HIJACK_TYPES),
        )
        for r in rows:
            key = (
                r["type"],
                self.slugs.get(r["tenant_id"]),
                r["prefix"],
                r["origin_asn"],
                r["detail_key"],
            )
            if key in self.expected:
                self.found.setdefault(key, r["created"])
            else:
                self.unexpected.add(key)

    @property
    def complete(self) -> bool:
        return len(self.found) == len(self.expected)

    def missing(self) -> list[dict[str, Any]]:
        return [h for key, h in self.expected.items() if key not in self.found]

    async def counts(self) -> dict[str, int]:
        assert self.conn is not None
        row = await self.conn.fetchrow(
            "SELECT count(*) FILTER (WHERE tenant_id IS NULL) AS global, "
            "count(*) FILTER (WHERE tenant_id IS NOT NULL) AS tenant FROM conflicts"
        )
        return {"global": row["global"], "tenant": row["tenant"]}

    async def aclose(self) -> None:
        if self.conn is not None:
            await self.conn.close()


@dataclass
class StackRun:
    """What one replay into a stack measured (times are epoch seconds)."""

    name: str
    messages: int
    in_process: InProcess
    launched: float = 0.0  # the replay command started
    first_publish: float | None = None  # its first record reached Kafka
    replay_exit: float | None = None  # it returned: the whole file is in Kafka
    replay_code: int | None = None
    last_conflict: float | None = None  # created_at of the last expected conflict stored
    drained: float | None = None  # the first sample after replay_exit with zero lag
    timed_out: bool = False
    recall: float = 0.0
    precision: float = 1.0
    restarts: int = 0
    replicas: int = 0
    max_lag_records: int = 0
    max_lag_s: float = 0.0
    conflicts_before: dict[str, int] = field(default_factory=dict)
    conflicts_after: dict[str, int] = field(default_factory=dict)
    replay_summary: dict[str, str] = field(default_factory=dict)
    missing: int | None = None
    complete: bool = False
    error: str | None = None  # the phase failed before it could measure
    load_avg: float | None = None  # the machine's 1-minute load average at the replay's start

    @property
    def start(self) -> float:
        return self.first_publish or self.launched

    @property
    def seconds(self) -> float | None:
        """First record published to the last expected conflict stored (all of them)."""
        return self.last_conflict - self.start if self.complete and self.last_conflict else None

    @property
    def rate(self) -> float | None:
        return self.messages / self.seconds if self.seconds else None

    @property
    def drain_rate(self) -> float | None:
        """Messages / (first record published -> zero lag): defined even when hijacks
        were lost on the way."""
        return self.messages / (self.drained - self.start) if self.drained else None

    @property
    def replay_s(self) -> float | None:
        return self.replay_exit - self.launched if self.replay_exit else None

    @property
    def replay_rate(self) -> float | None:
        return self.messages / self.replay_s if self.replay_s else None

    @property
    def publish_rate(self) -> float | None:
        """Messages / (first record published -> the replay's exit): its start-up left out."""
        if self.replay_exit and self.first_publish:
            return self.messages / (self.replay_exit - self.first_publish)
        return None

    @property
    def drain_s(self) -> float | None:
        return self.drained - self.replay_exit if self.drained and self.replay_exit else None

    def gained(self, scope: str) -> int | None:
        if scope not in self.conflicts_after:
            return None
        return self.conflicts_after[scope] - self.conflicts_before.get(scope, 0)


def replay_summary(text: str) -> dict[str, str]:
    """The figures of the replay's closing table (rich prints it on stderr)."""
    out = {}
    for name in ("updates published", "Kafka records", "rate", "dead letters"):
        match = re.search(re.escape(name) + r"\W+([^│|\n]+?)\s*[│|]", text)
        if match:
            out[name] = match.group(1).strip()
    return out


class Watch:
    """`bgpo ingest replay FILE` as a subprocess while lag, replicas and conflicts are
    sampled; ends when every expected conflict is stored and the lag is zero, when the
    lag has stayed zero for ``SETTLE_S`` after the replay without them (lost), when the
    replay fails, or ``timeout_s`` after the launch."""

    SETTLE_S = 10.0

    def __init__(
        self,
        stack: Stack,
        path: Path,
        labels: dict[str, Any],
        tenant_ids: dict[str, int],
        run: StackRun,
    ) -> None:
        self.stack = stack
        self.path = path
        self.run = run
        self.log_file = stack.settings.run_dir / f"bench-replay-{run.name}.log"
        self.replicas = ReplicaWatch(stack.settings.dashboard_url, stack.ray_headers())
        self.conflicts = ConflictWatch(
            asyncpg_dsn(stack.endpoints.database_url), labels, tenant_ids
        )

    async def __call__(self, timeout_s: float) -> None:
        settings = self.stack.settings
        await self.replicas.sample()
        self.replicas.mark_initial()
        self.run.replicas = self.replicas.replicas()
        await self.conflicts.sample()
        self.run.conflicts_before = await self.conflicts.counts()
        reader = LagReader(
            self.stack.endpoints.kafka_bootstrap_servers,
            settings.kafka_topic,
            settings.detector_group,
            settings.kafka_partitions,
        )
        try:
            async with reader:
                lag = LagWatch(reader)
                await lag.sample()
                with self.log_file.open("wb") as out:
                    await self._replay(lag, out, timeout_s)
            await self._finish(lag)
        finally:
            await self.conflicts.aclose()
            await self.replicas.aclose()
            self.run.replay_summary = replay_summary(self.log_file.read_text(errors="replace"))

    async def _replay(self, lag: LagWatch, out: Any, timeout_s: float) -> None:
        run = self.run
        run.load_avg = os.getloadavg()[0]  # a shared machine: say how busy it was
        log(f"  load average {run.load_avg:.2f} at the start of the replay")
        run.launched = time.time()
        # In a session of its own, as when a user runs it from a terminal: with Linux
        # autogroups a session is a scheduling group, and the benchmark's own sampling
        # must not take its CPU share.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bgp_orchestrator.cli.main", "ingest", "replay", str(self.path),
            env={**self.stack.env, "COLUMNS": "200"}, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
        ends = asyncio.create_task(lag.track_ends())
        exited = asyncio.create_task(proc.wait())
        try:
            await self._loop(lag, exited, timeout_s)
        finally:
            ends.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ends
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 30)

    async def _loop(self, lag: LagWatch, exited: asyncio.Task[int], timeout_s: float) -> None:
        run, conflicts = self.run, self.conflicts
        next_report = time.time() + 10
        for tick in itertools.count():
            await asyncio.sleep(LAG_SAMPLE_S)
            now = time.time()
            run.first_publish = run.first_publish or lag.first_move
            if exited.done() and run.replay_exit is None:
                run.replay_exit, run.replay_code = now, exited.result()
                log(f"  replay exited ({run.replay_code}) after {run.replay_s:.1f} s")
                if run.replay_code != 0:
                    log("  the replay failed: " + self.log_file.read_text(errors="replace")[-2000:])
                    return
            sample = await lag.sample()
            await conflicts.sample()
            if tick % 2:
                await self.replicas.sample()
            if run.replay_exit and sample.records == 0:
                run.drained = run.drained or sample.at
                if conflicts.complete or now - run.drained > self.SETTLE_S:
                    return
            if now > next_report:
                next_report = now + 10
                self._progress(now, sample)
            if now - run.launched > timeout_s:
                run.timed_out = True
                return

    def _progress(self, now: float, sample: LagSample) -> None:
        run = self.run
        log(
            f"  +{now - run.launched:5.0f}s replay {'done' if run.replay_exit else 'running'}, "
            f"lag {sample.records:,} records (oldest {sample.seconds:.1f} s), hijacks stored "
            f"{len(self.conflicts.found)}/{len(self.conflicts.expected)}, detector replicas "
            f"replaced {self.replicas.restarts()}"
        )

    async def _finish(self, lag: LagWatch) -> None:
        run, conflicts = self.run, self.conflicts
        run.max_lag_records, run.max_lag_s = lag.max_records, lag.max_seconds
        await self.replicas.sample()
        run.restarts = self.replicas.restarts()
        run.conflicts_after = await conflicts.counts()
        found, expected = len(conflicts.found), len(conflicts.expected)
        run.recall = found / expected if expected else 1.0
        judged = found + len(conflicts.unexpected)
        run.precision = found / judged if judged else 1.0
        run.complete = conflicts.complete
        run.last_conflict = max(conflicts.found.values()) if conflicts.found else None
        run.missing = expected - found
        for event in self.replicas.events[-20:]:
            log(f"  serve: {event}")
        log(f"  load average {os.getloadavg()[0]:.2f} at the end")
        if not conflicts.complete:
            self._missing(lag.last)

    def _missing(self, last: LagSample | None) -> None:
        run, conflicts = self.run, self.conflicts
        why = "TIMED OUT" if run.timed_out else "the lag is zero, yet"
        log(
            f"  {why}: {len(conflicts.found)}/{len(conflicts.expected)} hijacks stored; the "
            f"replay {'finished' if run.replay_exit else 'still ran'}"
        )
        for h in conflicts.missing()[:30]:
            log(
                f"    missing {h['type']} {h['prefix']} AS{h['origin_asn']} "
                f"({h['tenant']}, line {h['line']})"
            )
        for number, (end, committed, age) in enumerate(last.partitions if last else []):
            if end > committed:
                log(
                    f"    partition {number}: lag {end - committed:,} records (oldest "
                    f"{age:.0f} s), committed {committed:,} of {end:,}"
                )


def serve_log_lines(stack: Stack, limit: int = 25) -> list[str]:
    """Warnings and errors of the Serve controller and detector replica logs about the
    detectors (failed health checks, stopped replicas): why replicas were replaced."""
    folder = stack.ray_logs / "serve"
    pattern = re.compile(r"^(WARNING|ERROR)|Error:|Traceback")
    lines: list[str] = []
    for f in sorted(folder.glob("controller_*.log")) + sorted(
        folder.glob("replica_detector_*.log")
    ):
        with contextlib.suppress(OSError):
            for line in f.read_text(errors="replace").splitlines():
                about = "Detector" in line or "detection" in line or "replica_" in f.name
                if about and pattern.search(line):
                    lines.append(f"{f.name}: {line.strip()[:400]}")
    return lines[-limit:]


async def stack_phase(
    name: str, path: Path, labels: dict[str, Any], baseline: InProcess, timeout_s: float
) -> StackRun:
    """`bgpo up` (default settings), the inventory through the API, the replay, `bgpo down`."""
    run = StackRun(name, labels["messages"], baseline)
    with tempfile.TemporaryDirectory(
        prefix=f"bgpo-bench-{name}-", ignore_cleanup_errors=True
    ) as tmp:
        stack = Stack(Path(tmp))
        try:
            log(f"{name}: bgpo up (default settings) in {tmp}")
            await asyncio.to_thread(stack.bgpo, "up")
            started = time.perf_counter()
            tenant_ids = await create_inventory(stack.settings.api_url, labels)
            prefixes = sum(len(t["prefixes"]) for t in labels["tenants"])
            log(
                f"  {len(tenant_ids)} tenants and {prefixes:,} monitored prefixes created "
                f"through the API in {time.perf_counter() - started:.1f} s"
            )
            detectors = Detectors(stack, await asyncio.to_thread(detector_replicas, stack))
            waited = await detectors.wait_reference(asyncpg_dsn(stack.endpoints.database_url))
            log(f"  every detector replica has the new reference ({waited:.1f} s later)")
            log(f"  bgpo ingest replay {path.name} ({labels['messages']:,} messages)")
            await Watch(stack, path, labels, tenant_ids, run)(timeout_s)
            await log_detector_stats(detectors)
            for line in serve_log_lines(stack):
                log(f"  log {line}")
            log(f"  the stack's Ray logs stay in {stack.ray_logs.parents[1]}")
        except (SystemExit, Exception) as exc:  # report it, and still print the JSON line
            run.error = f"{type(exc).__name__}: {exc}"[:2000]
            log(f"{name} failed: {run.error}")
        finally:
            log(f"{name}: bgpo down")
            try:
                stack.bgpo("down")
            except (SystemExit, Exception) as exc:
                log(f"  bgpo down failed: {exc}")
    return run


async def log_detector_stats(detectors: Detectors) -> None:
    """What each replica did (diagnostics: a failure here is reported, not raised)."""
    try:
        replicas = await detectors.stats()
    except Exception as exc:
        log(f"  detector stats unavailable: {exc}"[:500])
        return
    for stats in replicas.values():
        log(
            f"  {stats['name']}: partitions {stats['partitions']}, {stats['updates']:,} "
            f"updates, {stats['conflicts_written']:,} conflict writes, errors "
            f"{stats['detector_errors']}, dead letters {dict(stats['dead_letters'])}, busy "
            f"{stats['busy_s']:.0f} s, last checkpoint {stats['checkpoint_ms']:.0f} ms, "
            f"slowest recent batches (ms) "
            f"{sorted(b[1] for b in stats['slow_batches'])[-3:]}"
        )


def detector_replicas(stack: Stack) -> int:
    """How many detector replicas the stack runs (Serve's REST API)."""
    from bgp_orchestrator.stack.serve_client import ServeClient

    apps = ServeClient(stack.settings.dashboard_url).applications()
    return len(apps["detector"]["deployments"]["Detector"]["replicas"])


def print_stack_run(run: StackRun) -> None:
    base = run.in_process

    def fmt(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    print(f"\n{run.name}: {run.messages:,} messages, replayed with `bgpo ingest replay`")
    if run.error:
        print(f"  FAILED: {run.error}")
    rows = [
        (
            "in process (parse + pipeline, the baseline)",
            f"{base.rate:,.0f} msgs/s ({base.updates:,} updates in {base.seconds:.1f} s), "
            f"recall {base.recall:.3f}, precision {base.precision:.3f}",
        ),
        (
            "end to end (first record -> last expected conflict)",
            f"{fmt(run.rate)} msgs/s in {fmt(run.seconds, '.1f', ' s')}"
            + (" (TIMED OUT)" if run.timed_out else ""),
        ),
        (
            "the replay command alone",
            f"{fmt(run.replay_rate)} msgs/s, {fmt(run.replay_s, '.1f', ' s')} "
            f"({fmt(run.publish_rate)} msgs/s from its first record; exit {run.replay_code}; "
            f"{run.replay_summary})",
        ),
        (
            "end to end, first record -> zero lag",
            f"{fmt(run.drain_rate)} msgs/s",
        ),
        (
            "recall / precision",
            f"{run.recall:.3f} / {run.precision:.3f} ({run.missing} hijacks not stored)",
        ),
        ("detector replicas replaced", f"{run.restarts} (of {run.replicas} at the start)"),
        ("max consumer lag", f"{run.max_lag_records:,} records, {run.max_lag_s:.1f} s"),
        ("drain (replay exit -> lag 0)", fmt(run.drain_s, ".1f", " s")),
        ("conflict rows gained", f"global {run.gained('global')}, tenant {run.gained('tenant')}"),
    ]
    for label, value in rows:
        print(f"  {label:<54}{value}")
    if run.rate and base.rate:
        print(f"  ratio end to end / in process: {run.rate / base.rate:.3f}x")
    if run.replay_rate and base.rate:
        print(f"  ratio replay alone / in process: {run.replay_rate / base.rate:.3f}x")


def stack_keys(prefix: str, run: StackRun | None) -> dict[str, Any]:
    """The JSON keys of a stack phase (all null when it did not run)."""

    def r(value: float | None, digits: int = 0) -> float | None:
        return None if value is None else round(value, digits) if digits else round(value)

    if run is None or not run.launched:  # not run, or failed before the replay
        empty = stack_keys(prefix, StackRun("", 0, InProcess(), launched=1.0))
        out = dict.fromkeys(empty, None)
        if run is not None:  # the in-process baseline ran
            out[f"{prefix}_in_process_msgs_per_s"] = round(run.in_process.rate)
            out[f"{prefix}_error"] = run.error
        return out
    base = run.in_process
    return {
        f"{prefix}_msgs_per_s": r(run.rate),
        f"{prefix}_recall": round(run.recall, 3),
        f"{prefix}_replica_restarts": run.restarts,
        f"{prefix}_max_lag_s": round(run.max_lag_s, 1),
        f"{prefix}_messages": run.messages,
        f"{prefix}_seconds": r(run.seconds, 1),
        f"{prefix}_last_stored_s": r(run.last_conflict - run.start, 1)
        if run.last_conflict
        else None,
        f"{prefix}_precision": round(run.precision, 3),
        f"{prefix}_max_lag_records": run.max_lag_records,
        f"{prefix}_drain_s": r(run.drain_s, 1),
        f"{prefix}_msgs_per_s_to_drain": r(run.drain_rate),
        f"{prefix}_replay_s": r(run.replay_s, 1),
        f"{prefix}_replay_msgs_per_s": r(run.replay_rate),
        f"{prefix}_replay_publish_msgs_per_s": r(run.publish_rate),
        f"{prefix}_in_process_msgs_per_s": round(base.rate),
        f"{prefix}_vs_in_process_ratio": round(run.rate / base.rate, 3)
        if run.rate and base.rate
        else None,
        f"{prefix}_conflicts_global": run.gained("global"),
        f"{prefix}_conflicts_tenant": run.gained("tenant"),
        f"{prefix}_missing": run.missing,
        f"{prefix}_timed_out": run.timed_out,
        f"{prefix}_error": run.error,
        f"{prefix}_load_avg": round(run.load_avg, 2) if run.load_avg is not None else None,
    }


async def ingest_phase(name: str, args: argparse.Namespace, storm: bool) -> StackRun:
    """The in-process baseline of the file, then the same file through a stack."""
    size = args.storm_pairs if storm else args.messages
    path, labels = ensure_stream(args.stream_dir, storm, size, args.seed)
    log(f"{name}: in process (RIS Live parser + detection pipeline, no Kafka, no database)")
    baseline = in_process(path, labels)
    log(
        f"  {baseline.rate:,.0f} messages/s ({baseline.updates:,} updates in "
        f"{baseline.seconds:.1f} s), recall {baseline.recall:.3f}, precision "
        f"{baseline.precision:.3f}; {baseline.global_keys:,} global and "
        f"{baseline.tenant_keys:,} tenant conflicts"
    )
    gc.collect()  # the baseline's detector state is garbage now
    return await stack_phase(name, path, labels, baseline, args.timeout_min * 60)


async def simulated(args: argparse.Namespace, wanted: set[str]) -> dict[str, Any]:
    """The simulated phases (single, saturation, live) that ``wanted`` names."""
    import ray
    from ray import serve

    work = Path(tempfile.mkdtemp(prefix="bgpo-bench-detect-"))
    ports = free_ports_env()
    settings = Settings(data_dir=work, **{k[5:].lower(): int(v) for k, v in ports.items()})
    services = embedded_services(settings)
    for svc in services:
        svc.start()
    ep = endpoints(settings)
    single = two = one = fixed = flat = None
    rss_mb = None
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

        if "single" in wanted:
            log(f"single process, in memory: {args.updates:,} updates")
            single, _ = single_process(
                world, world.reference_json(), vrp_path, rel_path, args.updates, args.incidents
            )
            log(
                f"  {single.rate:,.0f} updates/s, recall {single.recall:.3f}, "
                f"precision {single.precision:.3f}"
            )
        if wanted & {"saturation", "live"}:
            ray.init(
                num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False
            )
            serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
            bench = Bench(settings, world, tenant_ids, env)
            with RssSampler() as rss:
                if "saturation" in wanted:
                    log("saturation, 2 replicas")
                    two = await bench.saturation(2, args.updates, args.incidents)
                    log("saturation, 1 replica")
                    one = await bench.saturation(1, args.updates, args.incidents)
                if "live" in wanted:
                    log(
                        f"fixed load: {args.rate:,.0f} updates/s for "
                        f"{args.latency_updates:,} updates"
                    )
                    fixed = await bench.live(
                        2,
                        args.latency_updates,
                        args.latency_incidents,
                        args.rate,
                        f"live at {args.rate:,.0f}/s, 2 replicas",
                    )
                    log("saturation with a live producer (latency under overload)")
                    flat = await bench.live(
                        2,
                        args.latency_updates,
                        args.latency_incidents,
                        None,
                        "live, producer flat out, 2 replicas",
                    )
            rss_mb = rss.peak_mb
            serve.shutdown()
            ray.shutdown()
    finally:
        for svc in reversed(services):
            svc.stop()
    phases = [p for p in (single, two, one, fixed, flat) if p is not None]
    print_simulated(phases, single, two, one, rss_mb)

    def rate(p: Phase | None) -> int | None:
        return round(p.rate) if p is not None else None

    scale = two.rate / one.rate if two and one and one.rate else None
    distribution = two.rate / single.rate if two and single and single.rate else None
    return {
        "updates": args.updates,
        "peers": args.peers,
        "updates_per_s": rate(two),
        "updates_per_s_1_actor": rate(one),
        "scale_out_ratio": round(scale, 2) if scale is not None else None,
        "single_process_updates_per_s": rate(single),
        "distributed_vs_single_ratio": round(distribution, 3) if distribution else None,
        "p50_ms_at_20k": fixed.percentile(50) if fixed else None,
        "p99_ms_at_20k": fixed.percentile(99) if fixed else None,
        "p50_ms_at_saturation": flat.percentile(50) if flat else None,
        "p99_ms_at_saturation": flat.percentile(99) if flat else None,
        "live_saturation_updates_per_s": rate(flat),
        "recall": min(p.recall for p in phases) if phases else None,
        "precision": min(p.precision for p in phases) if phases else None,
        "peak_rss_mb": round(rss_mb) if rss_mb is not None else None,
    }


def print_simulated(
    phases: list[Phase],
    single: Phase | None,
    two: Phase | None,
    one: Phase | None,
    rss_mb: float | None,
) -> None:
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
    if two and one and single:
        print(
            f"\nscale-out 2 replicas / 1 replica: {two.rate / one.rate:.2f}x   "
            f"2 replicas / single process: {two.rate / single.rate:.2f}x   "
            f"peak detector RSS: {rss_mb or 0:.0f} MB"
        )
    if one:
        print(sizing(one.rate))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    wanted = set(args.phases)
    result: dict[str, Any] = {}
    if wanted & {"single", "saturation", "live"}:
        result |= await simulated(args, wanted)
    else:
        result |= {k: None for k in SIMULATED_KEYS} | {"updates": None, "peers": None}
    runs = {}
    for name, storm in (("ingest-path", False), ("storm", True)):
        if name in wanted:
            runs[name] = await ingest_phase(name, args, storm)
            print_stack_run(runs[name])
    result |= stack_keys("ingest_path", runs.get("ingest-path"))
    result |= stack_keys("storm", runs.get("storm"))
    result["storm_pairs"] = args.storm_pairs if "storm" in wanted else None
    if "rules" in wanted:
        result |= rules_phase(args)
    result["cpus"] = os.cpu_count()
    return result


SIMULATED_KEYS = (
    "updates_per_s",
    "updates_per_s_1_actor",
    "scale_out_ratio",
    "single_process_updates_per_s",
    "distributed_vs_single_ratio",
    "p50_ms_at_20k",
    "p99_ms_at_20k",
    "p50_ms_at_saturation",
    "p99_ms_at_saturation",
    "live_saturation_updates_per_s",
    "recall",
    "precision",
    "peak_rss_mb",
)


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


def phase_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PHASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)}; got {text!r}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--phases",
        type=phase_list,
        default=list(PHASES),
        help=f"comma-separated, of {','.join(PHASES)} (default: all)",
    )
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
    parser.add_argument(
        "--messages", type=int, default=1_000_000, help="RIS Live messages of ingest-path"
    )
    parser.add_argument(
        "--storm-pairs", type=int, default=200_000, help="leaked prefix-origin pairs of storm"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the RIS Live files")
    parser.add_argument(
        "--aspa-share", type=int, default=50, help="rules: %% of customer ASes with an ASPA"
    )
    parser.add_argument(
        "--stream-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bgpo-bench-ris",
        help="where the RIS Live files are generated once and reused",
    )
    parser.add_argument(
        "--timeout-min",
        type=float,
        default=15.0,
        help="a stack phase gives up this long after the replay's start",
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
