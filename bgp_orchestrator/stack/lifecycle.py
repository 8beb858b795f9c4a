"""`bgpo up`, `bgpo down` and `bgpo status` as functions (the CLI only prints)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bgp_orchestrator import probes
from bgp_orchestrator.errors import ConfigurationError, ServiceUnavailable
from bgp_orchestrator.ingest.publisher import ensure_topics
from bgp_orchestrator.local import oidc
from bgp_orchestrator.local.process import PidFile, spawn_detached, terminate
from bgp_orchestrator.local.services import Endpoints, embedded_services, endpoints
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack import serve_config
from bgp_orchestrator.stack.ray_head import LocalRayHead
from bgp_orchestrator.stack.serve_client import ServeClient
from bgp_orchestrator.storage import migrate

Step = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class StackInfo:
    api_url: str
    docs_url: str
    dashboard_url: str
    ray_address: str
    services: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: The customer portal (its own Serve application under /portal).
    portal_url: str = ""
    #: How to log in to the embedded OIDC provider (development), or "".
    demo_login: str = ""


def dashboard_url(settings: Settings) -> str:
    if settings.ray_address:
        host = settings.ray_address.removeprefix("ray://").split(":")[0]
        return f"http://{host}:{settings.ray_dashboard_port}"
    return settings.dashboard_url


def check_external(settings: Settings, ep: Endpoints) -> None:
    """Configured (not embedded) services must answer before anything is started."""
    checks = []
    if settings.database_url is not None:
        checks.append(probes.postgres(ep.database_url))
    if settings.redis_url is not None:
        checks.append(probes.redis(ep.redis_url))
    if settings.kafka_bootstrap_servers is not None:
        checks.append(probes.kafka(ep.kafka_bootstrap_servers))
    if settings.victoria_metrics_url is not None and ep.metrics_url:
        checks.append(probes.http("victoria-metrics", f"{ep.metrics_url}/health"))
    if not checks:
        return

    async def run() -> list[probes.Probe]:
        return list(await asyncio.gather(*checks))

    failed = [p for p in asyncio.run(run()) if not p.ok]
    if failed:
        raise ServiceUnavailable("service-unreachable", "; ".join(p.detail for p in failed))


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        probe = asyncio.run(probes.http("api", f"{url}/readyz"))
        if probe.ok:
            return
        last = probe.detail
        time.sleep(0.5)
    raise ServiceUnavailable("api-not-ready", f"the API did not become ready: {last}")


def check_api_host(settings: Settings) -> None:
    """Development mode trusts the X-Tenant header: it must not be reachable from the network."""
    if settings.development and not settings.api_on_loopback:
        raise ConfigurationError(
            "development-api-not-loopback",
            f"BGPO_API_HOST={settings.api_host} is not a loopback address, and development "
            "mode accepts the X-Tenant header without any credential: anyone who reaches "
            "the port could act as any tenant. Keep BGPO_API_HOST=127.0.0.1 in development, "
            "or run BGPO_ENVIRONMENT=production (with BGPO_OIDC_ISSUER and "
            "BGPO_API_KEY_SECRET) to serve other machines.",
            "BGPO_API_HOST",
            settings.api_host,
        )


async def ensure_demo_tenant(settings: Settings) -> None:
    """The tenant the embedded provider's demo users belong to (development only)."""
    from bgp_orchestrator.storage.database import open_database

    async with open_database(settings) as db, db.connection() as conn:
        await conn.execute(
            "INSERT INTO tenants (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING",
            oidc.DEMO_TENANT,
            "Demo Networks",  # the embedded OIDC provider's demo users
        )


def identity_env(settings: Settings) -> dict[str, str]:
    """What the Serve replicas need to validate tokens: the effective issuer."""
    issuer = oidc.issuer(settings)
    return {"BGPO_OIDC_ISSUER": issuer} if issuer else {}


def apps_env(settings: Settings) -> dict[str, str]:
    """The environment `bgpo up` gives the Serve applications beside the settings: the
    local services' endpoints and the issuer. A config redeployed with anything else
    is a new version of every application (all replicas restarted), not a reconfigure."""
    return {**endpoints(settings).as_env(), **identity_env(settings)}


def up(settings: Settings, step: Step = _quiet, demo: bool = False) -> StackInfo:
    started = time.monotonic()
    check_api_host(settings)
    if demo:
        settings = demo_settings(settings)
    ep = endpoints(settings)
    config = serve_config.validate(serve_config.load())
    head = LocalRayHead(settings) if settings.ray_address is None else None
    if head is not None and not head.running():
        head.check_ports()

    check_external(settings, ep)
    info = StackInfo(
        api_url=settings.api_url,
        docs_url=f"{settings.api_url}/docs",
        dashboard_url=dashboard_url(settings),
        ray_address=settings.ray_address or f"127.0.0.1:{settings.ray_port}",
        portal_url=f"{settings.api_url}/portal",
    )
    for svc in embedded_services(settings):
        if not svc.running():
            step(f"starting {svc.title}")
            svc.start()
        info.services[svc.name] = svc.url
    if oidc.embedded_oidc_wanted(settings):
        provider = oidc.EmbeddedOIDC(settings)
        if not provider.running():
            step(f"starting the {provider.title}")
            provider.start()
        info.services[provider.name] = provider.url
        info.demo_login = provider.describe()["demo login"]

    step("applying database migrations")
    migrate.upgrade(ep.database_url)

    step("creating the Kafka topics")
    asyncio.run(
        ensure_topics(
            ep.kafka_bootstrap_servers,
            settings.kafka_topic,
            settings.kafka_dlq_topic,
            settings.kafka_partitions,
        )
    )
    if oidc.embedded_oidc_wanted(settings):
        step(f"creating the demo tenant {oidc.DEMO_TENANT!r} of the embedded OIDC users")
        asyncio.run(ensure_demo_tenant(settings))
    if demo:
        step("loading the demo world (3 tenants, simulated ROAs and AS relationships)")
        asyncio.run(demo_setup(settings))

    from bgp_orchestrator.flaps import bootstrap

    bootstrap.prepare(settings, ep.redis_url, step)

    if head is not None and not head.running():
        step("starting the local Ray head")
        head.start()

    step("deploying the Serve applications")
    client = ServeClient(info.dashboard_url)
    local = serve_config.for_local(config, settings, apps_env(settings))
    client.deploy(local)
    client.wait_running(serve_config.app_names(local))
    step("waiting for the API to be ready")
    wait_ready(info.api_url)
    if demo:
        step("starting the demo simulator")
        start_demo(settings)
        info.services["demo simulator"] = f"{DEMO_RATE:.0f} updates/s, tenants sim-tenant-1..3"
    info.seconds = time.monotonic() - started
    return info


# --- the demo ------------------------------------------------------------------------

DEMO_SEED = 42
DEMO_RATE = 200.0
# 400 prefixes per tenant: incidents take fresh ones, and `bgpo chaos run` (which
# replays this world) needs enough for many runs on one stack.
DEMO_WORLD = {"seed": DEMO_SEED, "peers": 2000, "prefixes": 5000, "tenant_prefixes": 400}


def demo_settings(settings: Settings) -> Settings:
    """Point the detectors at the demo world's reference files unless the operator set some."""
    folder = settings.data_dir / "simulation"
    update: dict[str, object] = {}
    if settings.rpki_vrp_file is None:
        update["rpki_vrp_file"] = folder / "vrps.csv"
    if settings.as_relationships_file is None:
        update["as_relationships_file"] = folder / "as-rel.txt"
    changed = settings.model_copy(update=update)
    changed.model_fields_set.update(update)
    return changed


async def demo_setup(settings: Settings) -> None:
    from bgp_orchestrator.simulation.setup import seed_tenants, write_reference_files
    from bgp_orchestrator.simulation.world import build
    from bgp_orchestrator.storage.database import open_database

    world = build(**DEMO_WORLD)
    write_reference_files(world, settings.data_dir / "simulation")
    async with open_database(settings) as db, db.connection() as conn:
        await seed_tenants(conn, world)


def demo_process(settings: Settings) -> PidFile:
    return PidFile(settings.run_dir / "demo.pid")


def start_demo(settings: Settings) -> None:
    import sys

    pidfile = demo_process(settings)
    if pidfile.process() is not None:
        return
    argv = [
        sys.executable,
        "-m",
        "bgp_orchestrator.cli.main",
        "simulate",
        "--seed",
        str(DEMO_WORLD["seed"]),
        "--peers",
        str(DEMO_WORLD["peers"]),
        "--prefixes",
        str(DEMO_WORLD["prefixes"]),
        "--tenant-prefixes",
        str(DEMO_WORLD["tenant_prefixes"]),
        "--rate",
        str(DEMO_RATE),
        "--duration",
        "300",
        "--incidents",
        "30",
        "--loop",
    ]
    env = {
        **os.environ,
        **serve_config.configured_env(settings),
        **endpoints(settings).as_env(),
        "BGPO_DATA_DIR": str(settings.data_dir),
    }
    proc = spawn_detached(argv, settings.run_dir / "demo.log", env=env)
    pidfile.write(proc.pid)


def down(settings: Settings, step: Step = _quiet) -> list[str]:
    """Stop what `up` started; returns what was stopped."""
    stopped = []
    client = ServeClient(dashboard_url(settings), timeout_s=10)
    if settings.ray_address is not None:
        step("deleting the Serve applications from the Ray cluster")
        client.shutdown()
        stopped.append("serve applications")
    else:
        head = LocalRayHead(settings)
        if head.processes():
            step("stopping the local Ray head")
            head.stop()
            stopped.append("ray head")
    demo = demo_process(settings).process()
    if demo is not None:
        step("stopping the demo simulator")
        terminate([demo])
        demo_process(settings).remove()
        stopped.append("demo simulator")
    provider = oidc.EmbeddedOIDC(settings)
    if provider.pid() is not None:
        step(f"stopping the {provider.title}")
        provider.stop()
        stopped.append(provider.name)
    for svc in reversed(embedded_services(settings)):
        if svc.pid() is not None:
            step(f"stopping {svc.title}")
            svc.stop()
            stopped.append(svc.name)
    return stopped


@dataclass(frozen=True)
class Component:
    name: str
    ok: bool
    detail: str
    #: what to show instead of ok/down (e.g. "stalled")
    state: str | None = None


async def _consumer_groups(settings: Settings, ep: Endpoints) -> list[Component]:
    """Lag and progress of the detectors' and the session stats' consumer groups."""
    import redis.asyncio as aioredis

    from bgp_orchestrator.stream.lag import group_lag
    from bgp_orchestrator.stream.progress import ProgressStore

    client = aioredis.from_url(ep.redis_url, socket_timeout=3.0, socket_connect_timeout=3.0)
    out = []
    try:
        for label, group, topic in (
            ("detectors", settings.detector_group, settings.kafka_topic),
            ("session stats", settings.session_stats_group, settings.kafka_topic),
            ("session merge", settings.session_merge_group, settings.session_windows_topic),
        ):
            name = f"{label} ({group})"
            try:
                lag = await asyncio.wait_for(
                    group_lag(
                        ep.kafka_bootstrap_servers,
                        topic,
                        group,
                        ProgressStore(client, group, topic),
                        settings.stall_after_s,
                    ),
                    timeout=10.0,
                )
            except Exception as exc:  # a status, never a crash
                out.append(Component(name, False, f"cannot read its progress: {exc}"))
                continue
            stalled, waiting = lag.stalled(), lag.waiting()
            state = "stalled" if stalled else "waiting" if waiting else None
            out.append(Component(name, not (stalled or waiting), lag.describe(), state))
    finally:
        await client.aclose()
    return out


def status(settings: Settings) -> list[Component]:
    ep = endpoints(settings)
    out: list[Component] = []

    async def gather() -> list[probes.Probe]:
        return list(
            await asyncio.gather(
                probes.postgres(ep.database_url),
                probes.redis(ep.redis_url),
                probes.kafka(ep.kafka_bootstrap_servers, timeout_s=3.0),
                probes.http("api", f"{settings.api_url}/readyz"),
            )
        )

    pg, rd, kf, api = asyncio.run(gather())
    embedded = {svc.name for svc in embedded_services(settings)}
    for probe in (pg, rd, kf):
        label = f"{probe.name} ({'embedded' if probe.name in embedded else 'configured'})"
        out.append(Component(label, probe.ok, probe.detail))
    if ep.metrics_url:
        vm = asyncio.run(probes.http("victoria-metrics", f"{ep.metrics_url}/health"))
        label = "embedded" if "victoria-metrics" in embedded else "configured"
        out.append(Component(f"victoria-metrics ({label})", vm.ok, vm.detail))
    else:
        out.append(Component("metric store", True, f"Parquet files in {settings.data_dir}/metrics"))
    if pg.ok:
        try:
            current = migrate.current_revision(ep.database_url)
            head = migrate.head_revision()
            out.append(
                Component(
                    "schema",
                    current == head,
                    f"at revision {current}, latest {head}"
                    + ("" if current == head else " (run `bgpo migrate`)"),
                )
            )
        except Exception as exc:  # any failure to read the version is a status, not a crash
            out.append(Component("schema", False, f"cannot read the revision: {exc}"))
    if settings.ray_address is None:
        head_ = LocalRayHead(settings)
        out.append(
            Component(
                "ray head",
                head_.running(),
                f"{len(head_.processes())} processes, GCS 127.0.0.1:{settings.ray_port}",
            )
        )
    try:
        apps = ServeClient(dashboard_url(settings), timeout_s=5).applications()
        expected = serve_config.app_names(serve_config.load())
        for name in expected:
            app = apps.get(name) or {}
            state = app.get("status", "NOT DEPLOYED")
            out.append(Component(f"serve app {name}", state == "RUNNING", str(state)))
    except ServiceUnavailable as exc:
        out.append(Component("ray dashboard", False, exc.message))
    if kf.ok and rd.ok:
        out.extend(asyncio.run(_consumer_groups(settings, ep)))
    out.append(Component("api", api.ok, api.detail))
    return out
