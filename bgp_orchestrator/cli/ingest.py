"""`bgpo ingest ...` and `bgpo simulate`: BGP sources into Kafka, with progress and a summary."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bgp_orchestrator.errors import BgpoError
from bgp_orchestrator.ingest.publisher import PublishStats, UpdatePublisher, ensure_topics
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.settings import Settings

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


async def _publisher(settings: Settings) -> UpdatePublisher:
    bootstrap = endpoints(settings).kafka_bootstrap_servers
    partitions = await ensure_topics(
        bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, settings.kafka_partitions
    )
    publisher = UpdatePublisher(
        bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, partitions
    )
    await publisher.start()
    return publisher


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


@ingest_app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(help="MRT update/RIB dump (gz/bz2/plain) or RIS Live JSONL")
    ],
    rate: Annotated[
        float | None, typer.Option(help="Updates per second (default: unthrottled)")
    ] = None,
    speedup: Annotated[float | None, typer.Option(help="Replay at N x the recorded time")] = None,
) -> None:
    """Replay a file into Kafka; corrupted records go to the dead-letter topic with a reason."""
    from bgp_orchestrator.ingest.sources import Pacer, replay_file

    settings = _settings()
    if rate is not None and speedup is not None:
        err.print("[red]error[/]: give --rate or --speedup, not both")
        raise typer.Exit(2)

    async def run() -> PublishStats:
        publisher = await _publisher(settings)
        pacer = Pacer(rate, speedup)
        try:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[updates]:,} updates, {task.fields[dead]} dead letters"),
                TimeElapsedColumn(),
                console=err,
            ) as bar:
                task = bar.add_task(file.name, total=None, updates=0, dead=0)
                for item in replay_file(file):
                    if item.dead is not None:
                        await publisher.dead_letter(item.dead)
                    if item.updates:
                        await pacer.wait(item.updates)
                        await publisher.publish(item.updates)
                    bar.update(
                        task,
                        updates=publisher.stats.updates,
                        dead=sum(publisher.stats.dead_letters.values()),
                    )
            return publisher.stats
        finally:
            await publisher.close()

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    _summary(f"replayed {file}", stats)


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
        publisher = await _publisher(settings)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            async for item in exabgp_stdin(reader, collector):
                if item.dead is not None:
                    await publisher.dead_letter(item.dead)
                if item.updates:
                    await publisher.publish(item.updates)
                    await publisher.flush()  # a collector's updates are few: no waiting
                if stop.is_set():
                    break
            return publisher.stats
        finally:
            await publisher.close()

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    _summary("ExaBGP input ended", stats)


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
) -> None:
    """Stream RIPE RIS Live into Kafka, reconnecting with backoff without duplicates."""
    from bgp_orchestrator.ingest.rislive_client import RisLiveClient, Subscription

    settings = _settings()
    subscription = Subscription(host, peer, prefix, more_specific, less_specific, path)
    client = RisLiveClient(
        url or settings.rislive_url,
        subscription,
        on_reconnect=lambda n, d: err.print(f"[yellow]connection lost[/], retry {n} in {d:.1f}s"),
    )

    async def run() -> PublishStats:
        publisher = await _publisher(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        try:
            with Progress(
                TextColumn("[bold]RIS Live"),
                TextColumn("{task.fields[updates]:,} updates, {task.fields[dups]} repeats skipped"),
                TimeElapsedColumn(),
                console=err,
            ) as bar:
                task = bar.add_task("rislive", total=None, updates=0, dups=0)
                async for item in client.items(stop):
                    if item.dead is not None:
                        await publisher.dead_letter(item.dead)
                    if item.updates:
                        await publisher.publish(item.updates)
                    bar.update(task, updates=publisher.stats.updates, dups=client.duplicates)
            return publisher.stats
        finally:
            await publisher.close()

    try:
        stats = asyncio.run(run())
    except BgpoError as exc:
        raise _fail(exc) from None
    _summary(
        "RIS Live", stats, {"connections": client.connections, "repeats skipped": client.duplicates}
    )


def simulate(
    peers: Annotated[int, typer.Option(help="Simulated BGP peers")] = 80_000,
    prefixes: Annotated[int, typer.Option(help="Prefixes in the simulated table")] = 100_000,
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
    world = build(seed=seed, peers=peers, prefixes=prefixes)
    total = max(1, int(rate * duration)) if rate > 0 else max(1, int(duration * 100_000))
    sim = Simulation(
        world,
        total=total,
        rate=rate or 100_000.0,
        incidents=incidents,
        seed=seed,
        start_time=time.time(),
    )

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
                    sim = Simulation(
                        world,
                        total=total,
                        rate=rate or 100_000.0,
                        incidents=incidents,
                        seed=seed + round_number,
                    )
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
    import asyncpg

    from bgp_orchestrator.simulation.setup import seed_tenants, write_reference_files
    from bgp_orchestrator.storage.database import asyncpg_dsn

    vrps, rels = write_reference_files(world, settings.data_dir / "simulation")  # type: ignore[arg-type]
    conn = await asyncpg.connect(asyncpg_dsn(endpoints(settings).database_url))
    try:
        await seed_tenants(conn, world)  # type: ignore[arg-type]
    finally:
        await conn.close()
    err.print(
        f"reference files: {vrps} and {rels} (set BGPO_RPKI_VRP_FILE and "
        "BGPO_AS_RELATIONSHIPS_FILE to them, or use `bgpo up --demo`)"
    )
