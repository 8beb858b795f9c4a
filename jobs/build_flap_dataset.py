"""Write flap-model training data to the offline feature store.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m jobs.build_flap_dataset simulate --sessions 80000 --windows 100
    python -m jobs.build_flap_dataset mrt ../shared/data/bgp/mrt/updates.20020722.2238.gz

``simulate`` draws sessions whose flaps are known (the labels are ground
truth); ``mrt`` derives window counts from real MRT update dumps (session state
changes and withdrawal bursts are in them). Both go through the same feature
code as the live stream and land in the offline store as one Parquet file per
source (a rerun replaces it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from bgp_orchestrator.flaps import dataset
from bgp_orchestrator.flaps.feature_store import write_offline
from bgp_orchestrator.flaps.features import LABEL
from bgp_orchestrator.flaps.training import LabelSpec
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.sessions import SessionSimulation

console = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="source", required=True)
    sim = sub.add_parser("simulate", help="simulated sessions with known flaps")
    sim.add_argument("--sessions", type=int, default=80_000)
    sim.add_argument("--windows", type=int, default=100)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--name", default="simulated", help="offline-store file name")
    real = sub.add_parser("mrt", help="real MRT update dumps")
    real.add_argument("files", type=Path, nargs="+")
    real.add_argument("--window", type=int, help="window seconds (default BGPO_FLAP_WINDOW_S)")
    real.add_argument(
        "--horizon",
        type=int,
        help="label horizon seconds (default: three windows; dumps are short)",
    )
    real.add_argument("--name", default="mrt", help="offline-store file name")
    args = parser.parse_args(argv)

    settings = Settings()
    if args.source == "simulate":
        spec = LabelSpec(
            settings.flap_window_s, settings.flap_horizon_s, settings.flap_withdraw_share
        )
        console.print(f"simulating {args.sessions:,} sessions x {args.windows} windows")
        frame = dataset.simulated(
            SessionSimulation(
                sessions=args.sessions,
                windows=args.windows,
                window_s=spec.window_s,
                seed=args.seed,
            ),
            spec,
        )
    else:
        missing = [str(f) for f in args.files if not f.is_file()]
        if missing:
            console.print(f"[red]no such file: {', '.join(missing)}")
            return 2
        window = args.window or settings.flap_window_s
        spec = LabelSpec(window, args.horizon or 3 * window, settings.flap_withdraw_share)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading MRT records", total=None)
            base, corrupted = dataset.mrt_windows(
                args.files, window, lambda n: progress.advance(task, n)
            )
        if corrupted:
            console.print(f"skipped {corrupted:,} corrupted MRT records")
        frame = dataset.features_and_labels(base, spec)
    path = write_offline(settings, frame, args.name)
    labelled = frame[LABEL].notna()
    console.print(
        f"{len(frame):,} rows for {frame['session_id'].nunique():,} sessions -> {path} "
        f"({int(labelled.sum()):,} labelled, {frame.loc[labelled, LABEL].mean():.2%} flapping)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
