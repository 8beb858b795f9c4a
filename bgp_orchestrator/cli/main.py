"""`bgpo`: bring the stack up and down, inspect it, migrate, validate the Serve config."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bgp_orchestrator import __version__
from bgp_orchestrator.errors import BgpoError
from bgp_orchestrator.settings import Settings

app = typer.Typer(
    name="bgpo",
    help="BGP Orchestrator: peering management and routing-conflict detection on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"])
            name = f"BGPO_{field.upper()}" if field else "settings"
            err.print(f"[red]error:[/] {name}: {e['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(2) from None


def _run(func: Callable[[], T]) -> T:
    """Run a command body; project errors print their message and exit non-zero."""
    try:
        return func()
    except BgpoError as exc:
        err.print(f"[red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug output")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pgserver warns about XDG_RUNTIME_DIR on import; it is irrelevant here.
    warnings.filterwarnings("ignore", module="platformdirs")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"bgp-orchestrator {__version__}")


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Also run a simulated world with incidents, so conflicts appear")
    ] = False,
) -> None:
    """Start the stack: services (embedded unless configured), migrations, Ray head, Serve apps."""
    from bgp_orchestrator.local.oidc import DEMO_USERS
    from bgp_orchestrator.stack import lifecycle

    settings = _settings()
    with console.status("starting", spinner="dots") as status:

        def step(message: str) -> None:
            status.update(message + " ...")
            console.log(message)

        info = _run(lambda: lifecycle.up(settings, step, demo=demo))
    console.print(f"\n[green]BGP Orchestrator is up[/] in {info.seconds:.0f}s\n")
    table = Table(show_header=False, box=None)
    table.add_row("API", info.api_url + "/api/v1")
    table.add_row("Portal", info.api_url + "/portal/")
    table.add_row("API docs", info.docs_url)
    table.add_row("Readiness", info.api_url + "/readyz")
    table.add_row("Metrics", info.api_url + "/metrics")
    table.add_row("Ray dashboard", info.dashboard_url)
    table.add_row("Ray address", info.ray_address)
    for name, url in info.services.items():
        from bgp_orchestrator.local.services import redact

        table.add_row(f"{name} (embedded)", redact(url))
    console.print(table)
    if info.demo_login:
        console.print(
            f"\nPortal: [bold]{info.portal_url}[/]  (demo login: {info.demo_login}; "
            f"other demo users: {', '.join(u.sub for u in DEMO_USERS[1:])})"
        )
    if demo:
        console.print(
            "\nThe demo simulator injects an incident every few seconds; watch them arrive:\n"
            f"  curl -N -H 'X-Tenant: sim-tenant-1' {info.api_url}/api/v1/conflicts/stream"
        )
    console.print("\nStop it with [bold]bgpo down[/]; check it with [bold]bgpo status[/].")


@app.command()
def down() -> None:
    """Stop everything `bgpo up` started (data is kept in the data directory)."""
    from bgp_orchestrator.stack import lifecycle

    settings = _settings()
    with console.status("stopping", spinner="dots") as status:

        def step(message: str) -> None:
            status.update(message + " ...")
            console.log(message)

        stopped = _run(lambda: lifecycle.down(settings, step))
    if stopped:
        console.print(f"[green]stopped[/]: {', '.join(stopped)}")
    else:
        console.print("nothing was running")


@app.command()
def status() -> None:
    """Health of each component; exits 1 if any is unhealthy."""
    from bgp_orchestrator.stack import lifecycle

    settings = _settings()
    components = _run(lambda: lifecycle.status(settings))
    table = Table("component", "state", "detail")
    for c in components:
        state = c.state or ("ok" if c.ok else "down")
        table.add_row(c.name, f"[green]{state}[/]" if c.ok else f"[red]{state}[/]", c.detail)
    console.print(table)
    if not all(c.ok for c in components):
        raise typer.Exit(1)


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision to upgrade to")] = "head",
    downgrade: Annotated[
        str | None, typer.Option(help="Downgrade to this revision instead (e.g. base)")
    ] = None,
) -> None:
    """Apply (or roll back) the database migrations."""
    from bgp_orchestrator.local.services import endpoints, redact
    from bgp_orchestrator.storage import migrate as migrations

    settings = _settings()
    dsn = endpoints(settings).database_url

    def run() -> str | None:
        import asyncio

        from bgp_orchestrator import probes
        from bgp_orchestrator.errors import ServiceUnavailable

        probe = asyncio.run(probes.postgres(dsn))
        if not probe.ok:
            hint = "" if settings.database_url else " (start the embedded one with `bgpo up`)"
            raise ServiceUnavailable("database-unreachable", probe.detail + hint)
        if downgrade is not None:
            migrations.downgrade(dsn, downgrade)
        else:
            migrations.upgrade(dsn, revision)
        return migrations.current_revision(dsn)

    current = _run(run)
    console.print(f"{redact(dsn)} is at revision [bold]{current or 'base'}[/]")


@app.command("serve-config")
def serve_config_cmd(
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Validate this file instead of the project's"),
    ] = None,
    local: Annotated[
        bool, typer.Option(help="Print the config as `bgpo up` deploys it (secrets redacted)")
    ] = False,
    kuberay: Annotated[
        Path | None,
        typer.Option(help="Write the config into this RayService manifest's serveConfigV2"),
    ] = None,
) -> None:
    """Print and validate the multi-application Serve config (Ray's ServeDeploySchema)."""
    from bgp_orchestrator.local.services import endpoints, redact
    from bgp_orchestrator.stack import serve_config

    def run() -> dict[str, Any]:
        config = serve_config.validate(serve_config.load(file))
        if local:
            settings = _settings()
            env = {k: redact(v) for k, v in endpoints(settings).as_env().items()}
            config = serve_config.for_local(config, settings, env)
        return config

    config = _run(run)
    if kuberay is not None:
        changed = _run(lambda: serve_config.embed_in_rayservice(kuberay))
        err.print(f"{kuberay}: serveConfigV2 {'updated' if changed else 'already up to date'}")
        return
    sys.stdout.write(serve_config.dump(config))
    err.print(
        f"[green]valid[/]: {len(config.get('applications', []))} application(s): "
        + ", ".join(serve_config.app_names(config))
    )


def _register() -> None:
    from bgp_orchestrator.cli.chaos import chaos_app
    from bgp_orchestrator.cli.ingest import ingest_app, simulate

    app.add_typer(ingest_app, name="ingest")
    app.add_typer(chaos_app, name="chaos")
    app.command()(simulate)


_register()

if __name__ == "__main__":
    app()
