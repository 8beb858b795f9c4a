"""`bgpo ingest ...` and `bgpo simulate`: BGP sources into Kafka, with progress and a summary."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bgp_orchestrator.errors import BgpoError
from bgp_orchestrator.ingest.publisher import PublishStats, UpdatePublisher, ensure_topics
from bgp_orchestrator.ingest.shard import Shard
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.settings import Settings

if TYPE_CHECKING:
    from bgp_orchestrator.ingest.sources import Chunk, Pacer

ingest_app = typer.Typer(
    help="Feed BGP updates into Kafka (topic BGPO_KAFKA_TOPIC).", no_args_is_help=True
)
err = Console(stderr=True)


def _settings() -> Settings:
    from bgp_orchestrator.cli.main import _settings as load

    return load()


def _fail(exc: BgpoError) -> typer.Exit:
    err.print(f"[red]error[/] ({exc.code}): {exc.message}")
    return typer.Exit(1)


async def _publisher(settings: Settings, *, eager: bool = False) -> UpdatePublisher:
    bootstrap = endpoints(settings).kafka_bootstrap_servers
    partitions = await ensure_topics(
        bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, settings.kafka_partitions
    )
    publisher = UpdatePublisher(
        bootstrap,
        settings.kafka_topic,
        settings.kafka_dlq_topic,
        partitions,
        eager=eager,
        retries=settings.kafka_publish_retries,
        retry_backoff_s=settings.kafka_publish_backoff_s,
        request_timeout_s=settings.kafka_publish_timeout_s,
    )
    await publisher.start()
    return publisher


def _progress(*columns: TextColumn) -> Progress:
    """A progress display that redraws itself four times a second; the commands update
    its fields once per chunk or batch, never per message."""
    return Progress(*columns, TimeElapsedColumn(), console=err, refresh_per_second=4)


def _summary(title: str, stats: PublishStats, extra: dict[str, object] | None = None) -> None:
    table = Table(title=title, show_header=False)
    elapsed = time.monotonic() - stats.started
    table.add_row("updates published", f"{stats.updates:,}")
    table.add_row("Kafka records", f"{stats.records:,}")
    table.add_row("rate", f"{stats.updates / elapsed:,.0f} updates/s" if elapsed else "-")
    dead = sum(stats.dead_letters.values())
    table.add_row(
        "dead letters",
        f"{dead:,}"
        + (
            " (" + ", ".join(f"{k}: {v}" for k, v in sorted(stats.dead_letters.items())) + ")"
            if dead
            else ""
        ),
    )
    for key, value in (extra or {}).items():
        table.add_row(key, str(value))
    err.print(table)


def _shard(shard: str | None, shard_by: str) -> Shard | None:
    if shard is None:
        if shard_by != "peer":
            err.print("[red]error[/]: --shard-by needs --shard K/N")
            raise typer.Exit(2)
        return None
    try:
        return Shard.parse(shard, shard_by)
    except BgpoError as exc:
        err.print(f"[red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(2) from None


ShardOption = Annotated[
    str | None,
    typer.Option(
        help="Publish only shard K of N (e.g. 2/4), so that N processes share one feed; "
        "each peer (or collector) belongs to one shard, so its updates keep their order"
    ),
]
ShardByOption = Annotated[
    str, typer.Option("--shard-by", help="What --shard divides: peer or collector")
]


class _Replay:
    """One replay's state, for the summary and for the resume hint on failure."""

    def __init__(self, file: Path, argv: list[str], start_at: int) -> None:
        self.file = file
        self.argv = argv
        self.start_at = start_at
        self.read = 0
        self.position = start_at - 1
        self.publisher: UpdatePublisher | None = None
        self.unit = "line"

    def resume_hint(self, why: str) -> None:
        acknowledged = self.publisher.acknowledged if self.publisher is not None else None
        if isinstance(acknowledged, int):
            done = f"everything up to {self.unit} {acknowledged:,} of {self.file} was acknowledged"
            resume = acknowledged + 1
        else:
            done = f"nothing after {self.unit} {self.start_at - 1:,} was acknowledged"
            resume = self.start_at
        command = shlex.join(["bgpo", "ingest", "replay", *self.argv, "--start-at", str(resume)])
        err.print(f"[yellow]{why}[/]: {escape(done)}; resume with:\n  {escape(command)}")

    async def publish(
        self,
        publisher: UpdatePublisher,
        chunks: Iterable[Chunk],
        pacer: Pacer,
        stop: asyncio.Event,
        shard: Shard | None,
    ) -> None:
        """Publish chunk after chunk (each tagged with its position) until the end or
        ``stop``, then wait until the broker acknowledged everything."""
        stats = publisher.stats
        with _progress(
            TextColumn("[bold]{task.description}"),
            TextColumn(
                f"{{task.fields[read]:,}} {self.unit}s read, {{task.fields[updates]:,}} "
                "updates acknowledged, {task.fields[dead]} dead letters"
                + (f" (shard {shard})" if shard else "")
            ),
        ) as bar:
            task = bar.add_task(self.file.name, total=None, read=0, updates=0, dead=0)
            for chunk in chunks:
                for letter in chunk.dead:
                    await publisher.dead_letter(letter)
                if pacer.active:
                    for due, part in pacer.slices(chunk.updates):
                        if not await pacer.wait(due, stop):
                            break  # interrupted within the chunk: its end is not reached
                        await publisher.publish(part)
                    else:
                        publisher.mark(chunk.position)
                else:
                    await publisher.publish(chunk.updates, chunk.position)
                self.read += chunk.read
                self.position = chunk.position
                dead = sum(stats.dead_letters.values())
                bar.update(task, read=self.read, updates=stats.updates, dead=dead)
                if stop.is_set():
                    break
            await publisher.flush()
            bar.update(task, updates=stats.updates, dead=sum(stats.dead_letters.values()))


def _replay_argv(
    file: Path, rate: float | None, speedup: float | None, shard: Shard | None
) -> list[str]:
    """The arguments that repeat this replay (for the resume hint)."""
    argv = [str(file)]
    for option, value in (("--rate", rate), ("--speedup", speedup)):
        if value is not None:
            argv += [option, f"{value:g}"]
    if shard is not None:
        argv += ["--shard", str(shard), "--shard-by", shard.by]
    return argv


@ingest_app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(help="MRT update/RIB dump (gz/bz2/plain) or RIS Live JSONL")
    ],
    rate: Annotated[
        float | None, typer.Option(help="Updates per second (default: unthrottled)")
    ] = None,
    speedup: Annotated[float | None, typer.Option(help="Replay at N x the recorded time")] = None,
    start_at: Annotated[
        int,
        typer.Option(
            "--start-at",
            min=1,
            help="Begin at this line (RIS Live JSONL) or record (MRT), counted from 1 over "
            "the whole file; a failed or interrupted replay prints the value to resume with",
        ),
    ] = 1,
    shard: ShardOption = None,
    shard_by: ShardByOption = "peer",
) -> None:
    """Replay a file into Kafka; corrupted records go to the dead-letter topic with a reason.

    Nothing is counted before the broker acknowledged it. When publishing fails, or on
    Ctrl-C, the replay prints the line (or record) up to which everything was
    acknowledged and the command that resumes after it (--start-at). Ctrl-C waits for
    what was sent; a second Ctrl-C stops at once.
    """
    from bgp_orchestrator.ingest.sources import Pacer, file_kind, replay_chunks

    settings = _settings()
    if rate is not None and speedup is not None:
        err.print("[red]error[/]: give --rate or --speedup, not both")
        raise typer.Exit(2)
    shard_spec = _shard(shard, shard_by)
    state = _Replay(file, _replay_argv(file, rate, speedup, shard_spec), start_at)

    async def run() -> bool:
        """True if it read the whole file, False if interrupted."""
        chunks = replay_chunks(file, start_at=start_at, shard=shard_spec)
        state.unit = "line" if file_kind(file) == "rislive" else "record"
        publisher = await _publisher(settings)
        state.publisher = publisher
        pacer = Pacer(rate, speedup)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        main = asyncio.current_task()

        def interrupt() -> None:
            if stop.is_set() and main is not None:
                main.cancel()  # the second Ctrl-C: stop waiting for the broker
            stop.set()

        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGTERM, interrupt)
        try:
            await state.publish(publisher, chunks, pacer, stop, shard_spec)
        except BaseException:
            await publisher.close(flush=False)
            raise
        await publisher.close()
        return not stop.is_set()

    try:
        complete = asyncio.run(run())
    except BgpoError as exc:
        err.print(f"[red]error[/] ({exc.code}): {exc.message}")
        if state.publisher is not None:  # it had started publishing
            state.resume_hint("replay failed")
        raise typer.Exit(1) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        state.resume_hint("interrupted")
        raise typer.Exit(130) from None
    assert state.publisher is not None
    _summary(
        f"replayed {file}" + (f" (shard {shard_spec} by {shard_spec.by})" if shard_spec else ""),
        state.publisher.stats,
        {f"{state.unit}s read": f"{state.read:,}", f"last {state.unit}": f"{state.position:,}"},
    )
    if not complete:
        state.resume_hint("interrupted")
        raise typer.Exit(130)


@ingest_app.command()
def exabgp(
    collector: Annotated[str, typer.Option(help="Name of this collector in conflicts")] = "exabgp",
) -> None:
    """Run as ExaBGP's API process: read its JSON from stdin and publish it.

    In exabgp.conf:  process bgpo { run bgpo ingest exabgp; encoder json; }
    and per neighbor: api { processes [ bgpo ]; receive { parsed; update; } neighbor-changes; }
    """
    from bgp_orchestrator.ingest.sources import exabgp_stdin

    settings = _settings()

    async def run() -> PublishStats:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        # eager: each message goes out as soon as its partition has nothing in flight
        # (no linger), and what arrives meanwhile rides along with the next record
        publisher = await _publisher(settings, eager=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            async for item in exabgp_stdin(reader, collector):
                if item.dead is not None:
                    await publisher.dead_letter(item.dead)
                if item.updates:
                    await publisher.publish(item.updates)
                if stop.is_set():
                    break
        except BaseException:
            await publisher.close(flush=False)
            raise
        await publisher.close()
        return publisher.stats

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    _summary("ExaBGP input ended", stats)


@ingest_app.command()
def bmp(
    listen: Annotated[
        str,
        typer.Option(
            help="Address and port to accept routers on: HOST:PORT, [V6]:PORT, 0.0.0.0:11019 "
            "for every IPv4 interface, [::]:11019 for every interface"
        ),
    ],
    view: Annotated[
        list[str] | None,
        typer.Option(
            help="What to publish (repeatable): pre-policy and post-policy Adj-RIB-In, "
            "loc-rib (RFC 9069); default all three, each as sessions of their own"
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="Accept routers only from this network (repeatable), e.g. 192.0.2.0/24"),
    ] = None,
    max_routers: Annotated[
        int, typer.Option(min=1, help="Routers connected at once; more are refused")
    ] = 256,
    stats_interval: Annotated[
        float, typer.Option(help="Log each router's counters every N seconds (0: never)")
    ] = 300.0,
    duration: Annotated[float | None, typer.Option(help="Stop after N seconds")] = None,
) -> None:
    """Run a BMP station (RFC 7854, Loc-RIB per RFC 9069): routers connect and stream
    their peers' routes, published to Kafka with the router and peer as the session.

    Malformed messages go to the dead-letter topic with the reason, and only a router
    whose stream cannot be cut into messages any more is disconnected (it reconnects).
    Ctrl-C or SIGTERM closes the connections and waits until the broker acknowledged
    everything.
    """
    import logging

    from bgp_orchestrator.bgp.parsers.bmp import VIEWS
    from bgp_orchestrator.ingest.bmp_station import BmpStation, parse_allow, parse_listen

    settings = _settings()
    try:
        host, port = parse_listen(listen)
        networks = parse_allow(allow or [])
    except BgpoError as exc:
        err.print(f"[red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(2) from None
    views = tuple(dict.fromkeys(view)) if view else VIEWS
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        err.print(f"[red]error[/]: --view {unknown[0]!r}: choose among {', '.join(VIEWS)}")
        raise typer.Exit(2)
    station_log = logging.getLogger("bgp_orchestrator.ingest.bmp_station")
    if station_log.getEffectiveLevel() > logging.INFO:
        station_log.setLevel(logging.INFO)  # connections, peers and dead letters are news

    station: BmpStation | None = None

    async def run() -> PublishStats:
        nonlocal station
        publisher = await _publisher(settings, eager=True)
        station = BmpStation(
            publisher, host, port, views=views, allow=networks, max_routers=max_routers
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        reporter = (
            asyncio.create_task(station.report(stats_interval)) if stats_interval > 0 else None
        )
        try:
            await station.start()
            await station.run(stop)
            await publisher.flush()
        except BaseException:
            await publisher.close(flush=False)
            raise
        finally:
            if reporter is not None:
                reporter.cancel()
        await publisher.close()
        return publisher.stats

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    routers = station.routers() if station is not None else []
    _summary(
        "BMP station",
        stats,
        {
            "router connections": len(routers),
            **{
                f"  {r['router']} ({r['address']})": (
                    f"{r['messages']:,} messages, {r['updates']:,} updates, "
                    f"{r['dead_letters']} dead letters; {r['why_closed'] or 'open'}"
                )
                for r in routers
            },
            "refused connections": station.refused if station is not None else 0,
        },
    )


@ingest_app.command()
def rislive(
    url: Annotated[str | None, typer.Option(help="RIS Live websocket URL")] = None,
    host: Annotated[str | None, typer.Option(help="Only this collector, e.g. rrc00")] = None,
    peer: Annotated[str | None, typer.Option(help="Only this peer address")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only this prefix")] = None,
    more_specific: Annotated[bool, typer.Option(help="With --prefix: and more-specifics")] = True,
    less_specific: Annotated[bool, typer.Option(help="With --prefix: and less-specifics")] = False,
    path: Annotated[
        str | None, typer.Option(help="AS path filter, e.g. '3356,174' or '^3356'")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after N seconds")] = None,
    shard: ShardOption = None,
    shard_by: ShardByOption = "peer",
) -> None:
    """Stream RIPE RIS Live into Kafka, reconnecting with backoff without duplicates."""
    from bgp_orchestrator.ingest.rislive_client import RisLiveClient, Subscription

    settings = _settings()
    shard_spec = _shard(shard, shard_by)
    subscription = Subscription(host, peer, prefix, more_specific, less_specific, path)
    client = RisLiveClient(
        url or settings.rislive_url,
        subscription,
        on_reconnect=lambda n, d: err.print(f"[yellow]connection lost[/], retry {n} in {d:.1f}s"),
        shard=shard_spec,
    )

    async def run() -> PublishStats:
        publisher = await _publisher(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        stats = publisher.stats
        try:
            with _progress(
                TextColumn("[bold]RIS Live"),
                TextColumn(
                    "{task.fields[frames]:,} messages, {task.fields[updates]:,} updates "
                    "acknowledged, {task.fields[dups]} repeats skipped"
                    + (f" (shard {shard_spec})" if shard_spec else "")
                ),
            ) as bar:
                task = bar.add_task("rislive", total=None, frames=0, updates=0, dups=0)
                async for batch in client.batches(stop):
                    for letter in batch.dead:
                        await publisher.dead_letter(letter)
                    if batch.updates:
                        await publisher.publish(batch.updates)
                    bar.update(
                        task, frames=client.frames, updates=stats.updates, dups=client.duplicates
                    )
                await publisher.flush()
        except BaseException:
            await publisher.close(flush=False)
            raise
        await publisher.close()
        return stats

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    extra: dict[str, object] = {
        "messages": f"{client.frames:,}",
        "connections": client.connections,
        "repeats skipped": client.duplicates,
    }
    if shard_spec is not None:
        extra[f"other shards' messages (shard {shard_spec} by {shard_spec.by})"] = (
            f"{client.others:,}"
        )
    _summary("RIS Live", stats, extra)


def simulate(
    peers: Annotated[int, typer.Option(help="Simulated BGP peers")] = 80_000,
    prefixes: Annotated[int, typer.Option(help="Prefixes in the simulated table")] = 100_000,
    tenant_prefixes: Annotated[
        int, typer.Option(help="Prefixes of each simulated tenant (incidents use fresh ones)")
    ] = 60,
    rate: Annotated[
        float, typer.Option(help="Updates per second (0: as fast as possible)")
    ] = 1000.0,
    duration: Annotated[float, typer.Option(help="Seconds of traffic at --rate")] = 60.0,
    incidents: Annotated[int, typer.Option(help="Labelled incidents to inject")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the world and the stream")] = 1,
    setup: Annotated[
        bool,
        typer.Option(
            help="Also create the world's tenants/prefixes in PostgreSQL and write its ROA and "
            "AS-relationship files under the data directory"
        ),
    ] = False,
    scenario_out: Annotated[
        Path | None,
        typer.Option(
            help="Write the incidents (updates and expected conflicts) as a scenario file"
        ),
    ] = None,
    loop: Annotated[
        bool, typer.Option(help="Start over when done, with new incidents (the demo does)")
    ] = False,
) -> None:
    """Simulate peers announcing, withdrawing and flapping, with labelled incidents."""
    from bgp_orchestrator.detection import scenario
    from bgp_orchestrator.simulation.stream import Simulation
    from bgp_orchestrator.simulation.world import build

    settings = _settings()
    world = build(seed=seed, peers=peers, prefixes=prefixes, tenant_prefixes=tenant_prefixes)
    total = max(1, int(rate * duration)) if rate > 0 else max(1, int(duration * 100_000))

    def new_round(number: int) -> Simulation:
        # every round's clock starts now: detectors judge recency by timestamp, and a
        # later round must not travel back to the dataclass default (2023)
        return Simulation(
            world,
            total=total,
            rate=rate or 100_000.0,
            incidents=incidents,
            seed=seed + number,
            start_time=time.time(),
        )

    sim = new_round(0)

    async def run() -> PublishStats:
        nonlocal sim
        if setup:
            await _setup_world(settings, world)
        publisher = await _publisher(settings)
        try:
            with Progress(
                TextColumn("[bold]simulating"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} updates"),
                TimeElapsedColumn(),
                console=err,
            ) as bar:
                round_number = 0
                while True:
                    task = bar.add_task("sim", total=total)
                    started = time.monotonic()
                    await publisher.publish(sim.warmup())
                    done = 0
                    for chunk in sim.updates(500):
                        await publisher.publish(chunk)
                        done += len(chunk)
                        bar.update(task, completed=min(done, total))
                        if rate > 0:
                            delay = started + done / rate - time.monotonic()
                            if delay > 0:
                                await asyncio.sleep(delay)
                    if not loop:
                        break
                    # a new round: the same world, new incidents (new hijackers, new keys)
                    round_number += 1
                    bar.remove_task(task)
                    sim = new_round(round_number)
            return publisher.stats
        finally:
            await publisher.close()

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    if scenario_out is not None:
        scenario.save(
            scenario_out,
            f"simulation seed {seed}: {incidents} incidents",
            world.reference_json(),
            [u for i in sim.plan() for u in i.updates],
            sim.expected(),
        )
    kinds: dict[str, int] = {}
    for incident in sim.plan():
        kinds[incident.kind] = kinds.get(incident.kind, 0) + 1
    _summary(
        "simulation",
        stats,
        {
            "peers": f"{peers:,}",
            "incidents": ", ".join(f"{k}: {v}" for k, v in kinds.items()),
            "expected conflicts": len(sim.expected()),
            "tenants": ", ".join(t.slug for t in world.tenants),
        },
    )


async def _setup_world(settings: Settings, world: object) -> None:
    from bgp_orchestrator.simulation.setup import seed_tenants, write_reference_files
    from bgp_orchestrator.storage.database import open_database

    vrps, rels = write_reference_files(world, settings.data_dir / "simulation")  # type: ignore[arg-type]
    async with open_database(settings) as db, db.connection() as conn:
        await seed_tenants(conn, world)  # type: ignore[arg-type]
    err.print(
        f"reference files: {vrps} and {rels} (set BGPO_RPKI_VRP_FILE and "
        "BGPO_AS_RELATIONSHIPS_FILE to them, or use `bgpo up --demo`)"
    )
