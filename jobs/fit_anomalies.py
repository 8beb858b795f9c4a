"""Fit one seasonal model per metric series and store the anomalies it finds.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m jobs.fit_anomalies [--engine prophet] [--days 14] [--tune]

Ray Data spreads the series over workers in chunks (the metric store's 64
session buckets); each worker reads its chunk from the metric store
(VictoriaMetrics, or the Parquet fallback), fits every series
(statsforecast by default, Prophet as the reference engine), stores the
anomalies in PostgreSQL and writes the newest band points back to the metric
store for dashboards. Beside the bands, the trailing multivariate detector
(:mod:`bgp_orchestrator.anomaly.multivariate`) scores each session's metrics
together against a baseline flagged steps are kept out of; its anomalies are
stored with the others, engine ``trailing`` (``--no-trailing``: bands only).
Both clean what they flag from their history, so an incident of hours is not
learnt as the normal. A series that cannot be fitted (too short, constant,
too many gaps) is skipped with its reason, counted in the run's record.
``--tune`` first lets Ray Tune choose the season length, band width and
smoothing on labelled series (generated with known anomalies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from bgp_orchestrator.anomaly import repository
from bgp_orchestrator.anomaly.engines import DEFAULT_MODEL, ENGINES, MODELS, FitParams
from bgp_orchestrator.anomaly.fitting import fit_frame
from bgp_orchestrator.anomaly.multivariate import TRAILING_ENGINE, live_params
from bgp_orchestrator.anomaly.series import BUCKETS, METRICS, bucket_of
from bgp_orchestrator.anomaly.store import read_series, write_series
from bgp_orchestrator.anomaly.trailing import TrailingParams
from bgp_orchestrator.anomaly.tuning import SEARCH_SPACE, score, with_config
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database, open_database

if TYPE_CHECKING:
    from bgp_orchestrator.anomaly.store import MetricStore

console = Console(stderr=True)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    since: datetime | None  # report anomalies ending at or after this


def chunks(sessions: list[str] | None) -> list[dict[str, Any]]:
    """One task per metric-store bucket (an exact label match in VictoriaMetrics, one
    folder of Parquet files): 80,000 sessions make 64 chunks of ~1,250. With
    ``sessions``, only their buckets, filtered to them."""
    if sessions is None:
        return [{"bucket": b, "sessions": ""} for b in range(BUCKETS)]
    by_bucket: dict[int, list[str]] = {}
    for session in sorted(set(sessions)):
        by_bucket.setdefault(bucket_of(session), []).append(session)
    return [{"bucket": b, "sessions": json.dumps(s)} for b, s in sorted(by_bucket.items())]


async def fit_bucket(
    store: MetricStore,
    db: Database,
    params: FitParams,
    window: Window,
    *,
    bucket: int,
    sessions: list[str] | None,
    metrics: list[str],
    bands: int,
    trailing: TrailingParams | None,
    run_id: int,
) -> dict[str, Any]:
    """Read one bucket of sessions, fit every series, store the band anomalies
    (engine ``params.engine``) and the trailing detector's (engine ``trailing``),
    write the newest band points back; the counts, and the seconds of each phase."""
    started = time.perf_counter()
    frame = await read_series(
        store,
        start=window.start,
        end=window.end,
        metrics=metrics,
        sessions=sessions,
        buckets=[bucket],
    )
    read_s = time.perf_counter() - started
    result = await asyncio.to_thread(
        fit_frame, frame, params, since=window.since, band_points=bands, trailing=trailing
    )
    started = time.perf_counter()
    async with db.connection() as conn:
        stored = await repository.store(conn, result.anomalies, engine=params.engine, run_id=run_id)
        stored_trailing = await repository.store(
            conn, result.trailing, engine=TRAILING_ENGINE, run_id=run_id
        )
    stored_s = time.perf_counter() - started
    started = time.perf_counter()
    if result.bands:
        await write_series(store, result.bands)
    phases = {"read": read_s, **result.seconds, "store": stored_s}
    phases["write_bands"] = time.perf_counter() - started
    return {
        "series": result.fitted + len(result.skipped),
        "fitted": result.fitted,
        "skipped": json.dumps(result.skip_counts),
        "anomalies": stored + stored_trailing,
        "trailing": stored_trailing,
        "phases": json.dumps(phases),
    }


class FitChunk:
    """Ray Data worker: read a chunk of sessions, fit, store; returns counts."""

    def __init__(
        self,
        params: dict[str, Any],
        window: Window,
        metrics: list[str],
        bands: int,
        trailing: dict[str, Any] | None,
    ):
        from bgp_orchestrator.anomaly.store import open_metric_store

        self.params = FitParams(**params)
        self.window = window
        self.metrics = metrics
        self.bands = bands
        self.trailing = TrailingParams(**trailing) if trailing is not None else None
        self.loop = asyncio.new_event_loop()
        settings = Settings()
        self.store = open_metric_store(settings)
        self.db = open_database(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        return self.loop.run_until_complete(self._run(batch))

    async def _run(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            "series": [], "fitted": [], "skipped": [], "anomalies": [], "trailing": [],
            "phases": [],
        }  # fmt: skip
        for bucket, sessions, run_id in zip(
            batch["bucket"], batch["sessions"], batch["run_id"], strict=True
        ):
            counts = await fit_bucket(
                self.store,
                self.db,
                self.params,
                self.window,
                bucket=int(bucket),
                sessions=json.loads(sessions) if sessions else None,
                metrics=self.metrics,
                bands=self.bands,
                trailing=self.trailing,
                run_id=int(run_id),
            )
            for name, value in counts.items():
                out[name].append(value)
        return out


def tune_params(
    base: FitParams, samples: int, series: int, storage: str, days: float
) -> tuple[FitParams, dict[str, Any]]:
    """Ray Tune over :data:`SEARCH_SPACE` on generated labelled series; best F1 wins.
    Season lengths the fitted history (``days``) cannot hold twice are not tried."""
    from ray import tune

    from bgp_orchestrator.anomaly.synthetic import generate

    steps_per_day = max(1, 86400 // base.resolution_s)
    space: dict[str, Any] = {}
    for name, spec in SEARCH_SPACE.items():
        kind, *values = spec
        if kind == "choice":
            steps = min(days, 14) * steps_per_day
            choices = [v for v in values[0] if 2 * v + 1 <= steps]
            space[name] = tune.choice(choices or [base.season_length])
        elif kind == "uniform":
            space[name] = tune.uniform(*values)
        else:
            space[name] = tune.loguniform(*values)

    def trial(config: dict[str, Any], labelled: Any) -> None:
        result = score(labelled, with_config(base, config))
        tune.report({k: float(v) for k, v in result.as_dict().items()})

    # with_parameters puts the labelled series in the object store once, not in
    # every trial's config.
    labelled = generate(series, steps_per_day=steps_per_day, seed=7)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trial, labelled=labelled), {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="f1", mode="max", num_samples=samples),
        run_config=tune.RunConfig(
            name=f"fit-anomalies-tune-{int(time.time())}", storage_path=storage
        ),
    )
    best = tuner.fit().get_best_result()
    if best.config is None or best.metrics is None:
        raise SystemExit(f"tuning found no result: {best.error}")
    return with_config(base, best.config), dict(best.metrics)


async def _db(settings: Settings, action: str, **kwargs: Any) -> Any:
    async with open_database(settings) as db, db.connection() as conn:
        if action == "start":
            return await repository.start_run(conn, **kwargs)
        return await repository.finish_run(conn, **kwargs)


def run(
    settings: Settings,
    params: FitParams,
    window: Window,
    *,
    metrics: list[str],
    sessions: list[str] | None,
    workers: int,
    bands: int,
    trailing: TrailingParams | None = None,
    tuned: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import ray
    import ray.data

    from bgp_orchestrator.anomaly.store import open_metric_store

    console.print(f"metric store: {open_metric_store(settings).describe()}")
    started = time.perf_counter()
    run_params = {
        **params.as_dict(),
        "metrics": metrics,
        "tuned": tuned,
        "trailing": trailing.as_dict() if trailing is not None else None,
    }
    run_id = asyncio.run(
        _db(
            settings,
            "start",
            engine=params.engine,
            params=run_params,
            data_from=window.start,
            data_to=window.end,
        )
    )
    totals: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    phases: Counter[str] = Counter()  # seconds summed over the workers
    error: str | None = None
    try:
        work = chunks(sessions)
        if work:
            # one block per bucket from the start: no repartition stage before the fits
            items = ray.data.from_items(
                [{**c, "run_id": run_id} for c in work], override_num_blocks=len(work)
            )
            ds = items.map_batches(
                FitChunk,
                fn_constructor_kwargs={
                    "params": params.as_dict(),
                    "window": window,
                    "metrics": metrics,
                    "bands": bands,
                    "trailing": trailing.as_dict() if trailing is not None else None,
                },
                batch_size=1,
                concurrency=workers,
                num_cpus=1,
            )
            columns = [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
            with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as bar:
                task = bar.add_task(f"fitting {len(work)} buckets of sessions", total=len(work))
                for row in ds.iter_rows():
                    totals.update(
                        series=row["series"],
                        fitted=row["fitted"],
                        anomalies=row["anomalies"],
                        trailing=row["trailing"],
                    )
                    skipped.update(json.loads(row["skipped"]))
                    phases.update(json.loads(row["phases"]))
                    bar.advance(task)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        asyncio.run(
            _db(
                settings,
                "finish",
                run_id=run_id,
                series=totals["series"],
                fitted=totals["fitted"],
                skipped=dict(skipped),
                anomalies=totals["anomalies"],
                error=error,
            )
        )
    seconds = time.perf_counter() - started
    return {
        "run_id": run_id,
        "engine": params.engine,
        "model": params.model if params.engine == "statsforecast" else None,
        "series": totals["series"],
        "fitted": totals["fitted"],
        "skipped": dict(skipped),
        "anomalies": totals["anomalies"],
        "trailing_anomalies": totals["trailing"],
        "seconds": round(seconds, 2),
        "series_per_s": round(totals["series"] / seconds, 1) if seconds else None,
        "phases_s": {name: round(value, 2) for name, value in phases.items()},
        "params": run_params,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, default="statsforecast")
    parser.add_argument(
        "--model", choices=MODELS, default=DEFAULT_MODEL, help="statsforecast model"
    )
    parser.add_argument("--days", type=float, default=14.0, help="history to fit (days)")
    parser.add_argument("--end", type=datetime.fromisoformat, help="end of the data (default now)")
    parser.add_argument(
        "--report-hours",
        type=float,
        help="store only anomalies ending in the last N hours (default: all in the data)",
    )
    parser.add_argument("--resolution-s", type=int, default=3600, help="step of the fitted series")
    parser.add_argument("--season-length", type=int, default=24, help="steps per season")
    parser.add_argument("--sigma", type=float, default=3.0, help="band half-width in sigmas")
    parser.add_argument("--alpha", type=float, default=0.05, help="seasonal_es smoothing")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated metrics")
    parser.add_argument("--sessions", help="comma-separated sessions (default: every one)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--bands", type=int, help="newest band points written back (default: a season)"
    )
    parser.add_argument(
        "--no-trailing",
        action="store_true",
        help="without the trailing multivariate detector (only the per-series bands)",
    )
    parser.add_argument("--tune", action="store_true", help="tune detection parameters first")
    parser.add_argument("--tune-samples", type=int, default=12)
    parser.add_argument("--tune-series", type=int, default=300)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import ray

    from bgp_orchestrator.errors import BgpoError

    args = parse_args(argv)
    unknown = set(args.metrics.split(",")) - set(METRICS)
    if unknown:
        raise SystemExit(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
    try:
        params = FitParams(
            engine=args.engine,
            model=args.model,
            season_length=args.season_length,
            k=args.sigma,
            alpha=args.alpha,
            resolution_s=args.resolution_s,
        )
    except BgpoError as exc:
        raise SystemExit(str(exc)) from exc
    end = (args.end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(days=args.days)
    since = end - timedelta(hours=args.report_hours) if args.report_hours else None
    ray.init(ignore_reinit_error=True, log_to_driver=False)
    tuned = None
    if args.tune:
        storage = str(Settings().data_dir / "ray_results")
        params, tuned = tune_params(params, args.tune_samples, args.tune_series, storage, args.days)
        console.print(
            f"tuned: season {params.season_length}, k {params.k:.2f}, alpha {params.alpha:.3f} "
            f"(F1 {tuned.get('f1', 0):.3f} on labelled series)"
        )
    outcome = run(
        Settings(),
        params,
        Window(start, end, since),
        metrics=args.metrics.split(","),
        sessions=args.sessions.split(",") if args.sessions else None,
        workers=args.workers,
        bands=args.bands if args.bands is not None else params.season_length,
        trailing=None if args.no_trailing else live_params(params),
        tuned=tuned and {k: v for k, v in tuned.items() if k in ("f1", "precision", "recall")},
    )
    skipped = ", ".join(f"{n} {reason}" for reason, n in outcome["skipped"].items()) or "none"
    console.print(
        f"run {outcome['run_id']}: {outcome['fitted']:,} of {outcome['series']:,} series fitted "
        f"({outcome['series_per_s']} series/s, {outcome['seconds']} s); skipped: {skipped}; "
        f"{outcome['anomalies']:,} anomalies stored ({outcome['trailing_anomalies']:,} of them "
        "the trailing detector's)"
    )
    print(json.dumps(outcome, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
