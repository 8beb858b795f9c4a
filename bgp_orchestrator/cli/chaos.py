"""`bgpo chaos list` and `bgpo chaos run [EXPERIMENT]`: the local fault-injection suite."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bgp_orchestrator.errors import BgpoError

chaos_app = typer.Typer(
    help="Fault-injection experiments against the stack `bgpo up` started.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


@chaos_app.command("list")
def list_() -> None:
    """The experiments, each with its fault and hypothesis."""
    from bgp_orchestrator.chaos.experiments import EXPERIMENTS

    table = Table("experiment", "fault", "hypothesis")
    for e in EXPERIMENTS.values():
        table.add_row(e.name, e.fault, e.hypothesis)
    out.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@chaos_app.command("run")
def run(
    experiment: Annotated[
        list[str] | None,
        typer.Argument(help="Experiments to run (default: all, in the listed order)"),
    ] = None,
    short: Annotated[
        bool, typer.Option(help="The small version the test suite runs (a few seconds each)")
    ] = False,
    hold: Annotated[
        float | None, typer.Option(help="Seconds a service stays stopped / a receiver hangs")
    ] = None,
    updates: Annotated[int | None, typer.Option(help="Background updates of each replay")] = None,
) -> None:
    """Run experiments: each prints a table row, and last one JSON line per experiment.

    Exits 1 if any hypothesis did not hold (something lost, duplicated or missed beyond
    what is documented, or no recovery within 30 s)."""
    import dataclasses

    from bgp_orchestrator.chaos import runner
    from bgp_orchestrator.chaos.experiments import DEFAULT, EXPERIMENTS, SHORT
    from bgp_orchestrator.cli.main import _settings

    names = experiment or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        err.print(
            f"[red]error[/] (unknown-experiment): {', '.join(unknown)}; "
            f"choose from {', '.join(EXPERIMENTS)}"
        )
        raise typer.Exit(2)
    size = SHORT if short else DEFAULT
    if hold is not None:
        size = dataclasses.replace(size, hold_s=hold)
    if updates is not None:
        size = dataclasses.replace(size, updates=updates)
    settings = _settings()
    table = Table(
        "experiment", "held", "failed requests", "recovery s", "updates lost",
        "duplicates", "missed", "updates", "expected", title="chaos",
    )  # fmt: skip
    results = []
    for name in names:
        exp = EXPERIMENTS[name]
        err.print(f"[bold]{name}[/]: {exp.hypothesis}")
        try:
            result = asyncio.run(runner.run(exp, settings, size, say=err.log))
        except BgpoError as exc:
            err.print(f"[red]error[/] ({exc.code}): {exc.message}")
            raise typer.Exit(1) from None
        results.append(result)
        lost = str(result.updates_lost)
        if result.lost_as_documented is not None:
            lost += f" ({result.lost_as_documented['updates']} as documented)"
        row = [
            name, "yes" if result.held else "[red]no[/]", str(result.failed_requests),
            _fmt(result.recovery_s), lost, str(result.duplicate_conflicts),
            str(result.conflicts_missed), f"{result.updates:,}", str(result.expected_conflicts),
        ]  # fmt: skip
        table.add_row(*row)
        out.print(" | ".join(row))
        for note in result.notes:
            err.print(f"  note: {note}")
    out.print(table)
    for result in results:
        sys.stdout.write(json.dumps(result.as_json()) + "\n")
    sys.stdout.flush()
    if not all(r.held for r in results):
        raise typer.Exit(1)
