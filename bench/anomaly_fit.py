"""Anomaly fitting: 80,000 hourly series of 14 days through the Ray Data job.

    ./dev bench-anomaly                      # 80,000 series
    ./dev bench-anomaly --series 10000       # a quicker look
    python bench/anomaly_fit.py --incidents-only --detectors trailing   # seconds

In one run:

1. generates 80,000 series (14 days, hourly, daily rhythm) with injected
   spikes, level shifts and dropouts, labels kept;
2. compares statsforecast models on a sample (series/s and F1): the measurement
   behind the default model;
3. starts its own stack (`bgpo up` in a temporary data directory on free
   ports), loads every series into its metric store (VictoriaMetrics when
   installed, else the Parquet fallback), submits ``jobs.fit_anomalies`` with
   ``ray job submit`` and times it; reads the anomalies the job stored in
   PostgreSQL back and scores them point by point against the labels;
4. fits Prophet (the reference engine) on a sample of the same series:
   series/s, the projected time for all of them, and F1 of both engines on
   that sample;
5. scores both engines on the labelled SQL Slammer minutes (time-ordered);
6. scores the detectors on every real labelled incident set, event by event
   (:mod:`bgp_orchestrator.anomaly.incidents`: Slammer and the collectors' 10-s
   steps made from the MRT dumps, labelled from the data): incidents detected,
   median detection delay, false events per day, point-wise P/R/F1 beside —
   the default engine (statsforecast), Prophet and the trailing multivariate
   detector in the same run.

The real data is read from ``BGPO_TEST_BGP_DATA`` (default: ``../shared/data/bgp``
beside the checkout). The last line is one JSON object; ``event_recall``,
``median_delay_min`` and ``false_events_per_day`` are the default engine's over
every real set, ``job_vs_model_speed`` the job's series/s (submit to finish)
over the default model's own series/s on the sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
from bench_stack import Stack, log

from bgp_orchestrator.anomaly import incidents, rule_choice, slammer
from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.evaluation import Scores, point_scores
from bgp_orchestrator.anomaly.events import EventScores
from bgp_orchestrator.anomaly.series import MetricPoint, bucket_of
from bgp_orchestrator.anomaly.store import open_metric_store
from bgp_orchestrator.anomaly.synthetic import LabelledSeries, generate
from bgp_orchestrator.anomaly.trailing_rule import RULE
from bgp_orchestrator.anomaly.tuning import score
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.storage.database import asyncpg_dsn

METRIC = "bgpo_session_update_rate"
DATA = Path(
    os.environ.get("BGPO_TEST_BGP_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "bgp"
)
SLAMMER = DATA / "anomaly"


def subset(data: LabelledSeries, rows: int) -> LabelledSeries:
    return LabelledSeries(
        data.index,
        data.values[:rows],
        data.labels[:rows],
        data.sessions[:rows],
        data.peer_asns[:rows],
    )


def timed_score(data: LabelledSeries, params: FitParams) -> tuple[float, Scores]:
    started = time.perf_counter()
    result = score(data, params)
    return len(data.sessions) / (time.perf_counter() - started), result


def model_choice(data: LabelledSeries, sample: int) -> list[dict[str, Any]]:
    rows = []
    score(subset(data, 10), FitParams())  # imports and first-call costs out of the timing
    for model, size in (
        ("seasonal_es", sample),
        ("seasonal_es_optimized", sample),
        ("mstl", max(50, sample // 20)),
        ("autoets", max(20, sample // 100)),
    ):
        rate, result = timed_score(subset(data, size), FitParams(model=model))
        rows.append(
            {"model": model, "series": size, "series_per_s": round(rate, 1), **result.as_dict()}
        )
        log(f"  {model:<22} {rate:>9,.1f} series/s  F1 {result.f1:.3f} on {size:,} series")
    return rows


async def load_vm(url: str, data: LabelledSeries, chunk: int = 2000) -> None:
    stamps = (data.index.asi8 // 1_000_000).tolist()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for lo in range(0, len(data.sessions), chunk):
            lines = [
                orjson.dumps(
                    {
                        "metric": {
                            "__name__": METRIC,
                            "session": s,
                            "peer_asn": str(int(a)),
                            "bucket": str(bucket_of(s)),
                        },
                        "values": np.round(v, 4).tolist(),
                        "timestamps": stamps,
                    }
                )
                for s, a, v in zip(
                    data.sessions[lo : lo + chunk],
                    data.peer_asns[lo : lo + chunk],
                    data.values[lo : lo + chunk],
                    strict=True,
                )
            ]
            response = await client.post("/api/v1/import", content=b"\n".join(lines) + b"\n")
            response.raise_for_status()
        (await client.get("/internal/force_flush")).raise_for_status()


async def load(stack: Stack, data: LabelledSeries) -> str:
    store = open_metric_store(stack.settings)
    where = store.describe()
    try:
        url = getattr(store, "url", None)
        if url:
            await load_vm(url, data)
            return where
        seconds = data.index.asi8 // 1_000_000_000
        for number, session in enumerate(data.sessions):
            asn = int(data.peer_asns[number])
            await store.write(
                [
                    MetricPoint(METRIC, session, asn, float(t), float(v))
                    for t, v in zip(seconds, data.values[number], strict=True)
                ]
            )
    finally:
        await store.close()
    return where


async def job_flags(stack: Stack, data: LabelledSeries) -> np.ndarray:
    """The band anomalies the job stored (the per-series view, what the injected
    labels are of), as flagged steps per series."""
    row_of = {s: i for i, s in enumerate(data.sessions)}
    step = data.index[1] - data.index[0]
    first = data.index[0]
    flags = np.zeros(data.labels.shape, dtype=bool)
    conn = await asyncpg.connect(asyncpg_dsn(endpoints(stack.settings).database_url))
    try:
        rows = await conn.fetch(
            "SELECT session, start_at, end_at FROM anomalies WHERE engine <> 'trailing'"
        )
    finally:
        await conn.close()
    for r in rows:
        lo = int((r["start_at"] - first) / step)
        hi = int((r["end_at"] - first) / step)
        flags[row_of[r["session"]], lo : hi + 1] = True
    return flags


def fit_through_stack(data: LabelledSeries, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bgpo-bench-anomaly-") as tmp:
        stack = Stack(Path(tmp))
        log("starting a stack (bgpo up) ...")
        stack.bgpo("up")
        try:
            started = time.perf_counter()
            where = asyncio.run(load(stack, data))
            load_s = time.perf_counter() - started
            points = data.values.size
            log(f"loaded {points:,} points into {where} in {load_s:.1f} s")
            end = data.index[-1] + (data.index[1] - data.index[0])
            days = (end - data.index[0]) / timedelta(days=1)
            seconds, out = stack.submit(
                "jobs.fit_anomalies", "--end", end.isoformat(), "--days", f"{days:g}",
                "--metrics", METRIC, "--workers", str(workers),
            )  # fmt: skip
            # `ray job submit` prints its own lines around the job's output.
            job = json.loads(
                next(x for x in reversed(out.splitlines()) if x.startswith('{"run_id"'))
            )
            flags = asyncio.run(job_flags(stack, data))
        finally:
            stack.bgpo("down")
    accuracy = point_scores(flags, data.labels)
    phases = job.get("phases_s") or {}
    if phases:  # seconds summed over the workers: where the job's time goes
        log("job phases (worker-seconds): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    log(
        f"job: {job['fitted']:,} series fitted in {job['seconds']} s inside the job "
        f"({job['series_per_s']} series/s), {seconds:.1f} s from submit to finish; "
        f"{job['anomalies']:,} anomalies ({job.get('trailing_anomalies', 0):,} the trailing "
        f"detector's); bands P {accuracy.precision:.3f} R {accuracy.recall:.3f} "
        f"F1 {accuracy.f1:.3f}"
    )
    return {
        "store": where,
        "load_s": round(load_s, 1),
        "submit_to_finish_s": round(seconds, 1),
        "job": job,
        "accuracy": accuracy.as_dict(),
    }


def real_incidents(detectors: tuple[str, ...]) -> dict[str, Any]:
    """Every detector on every real labelled set: per set and pooled."""
    cases = incidents.cases(DATA)
    for case in cases:
        if case.state_peers:
            log(
                f"  {case.name:<22} state changes on {case.state_peers} peers, "
                f"{case.silent_state_peers} of them sent no update in the dump"
            )
    out: dict[str, Any] = {}
    for detector in detectors:
        outcomes = []
        for case in cases:
            outcome = incidents.evaluate(case, detector)
            outcomes.append(outcome)
            e = outcome.scores
            delay = "-" if e.median_delay_min is None else f"{e.median_delay_min:.2f} min"
            log(
                f"  {case.name:<22} {detector:<13} {e.detected}/{e.incidents} incidents, "
                f"median delay {delay}, {e.false_events} false events "
                f"({e.false_events_per_day:,.1f}/day); P {e.points.precision:.3f} "
                f"R {e.points.recall:.3f} F1 {e.points.f1:.3f} ({outcome.seconds} s)"
            )
        pooled = incidents.pooled(outcomes)
        log(
            f"  {'all sets':<22} {detector:<13} {pooled['detected']}/{pooled['incidents']} "
            f"incidents, median delay {pooled['median_delay_min']} min, "
            f"{pooled['false_events_per_day']}/day false events over {pooled['days']} days"
        )
        out[detector] = {**pooled, "sets": [o.as_dict() for o in outcomes]}
    return out


def _fmt(e: EventScores) -> str:
    delay = "-" if e.median_delay_min is None else f"{e.median_delay_min:g} min"
    return (
        f"{e.detected}/{e.incidents}, delay {delay}, {e.false_events} false, F1 {e.points.f1:.2f}"
    )


def trailing_choice() -> dict[str, Any]:
    """The trailing rule chosen on the real sets (rule_choice), the shipped rule
    beside it, leave-one-set-out figures, the per-peer view and the rule at the
    fitting job's hourly step (Slammer summed into hours)."""
    cases = incidents.cases(DATA)
    names = [c.name for c in cases]
    started = time.perf_counter()
    scored = rule_choice.table(cases)
    chosen = rule_choice.choose(scored, names)
    log(
        f"trailing rule: {len(scored)} rules x {len(cases)} sets in "
        f"{time.perf_counter() - started:.1f} s; chosen on all sets {chosen.as_dict()}"
        f"{' (the shipped rule)' if chosen == RULE else f'; shipped {RULE.as_dict()}'}"
    )
    shipped = scored.get(RULE) or rule_choice.score_rule(RULE, cases)
    held = rule_choice.leave_one_out(scored)
    for h in held:
        r = h.rule
        log(
            f"  {h.case:<22} shipped: {_fmt(shipped[h.case]):<32} left out: {_fmt(h.scores):<32} "
            f"(chosen on the others: window {r.window}, k {r.k:g}, floor {r.min_sigma:g}, "
            f"persist {r.persist}, span {r.span_s} s, hold {r.hold_k:g})"
        )
    out_of_sample = incidents.pooled(
        [incidents.Outcome(h.case, "trailing", h.scores, 0.0) for h in held]
    )
    in_sample = incidents.pooled([incidents.Outcome(n, "trailing", shipped[n], 0.0) for n in names])
    for label, pooled in (("shipped rule", in_sample), ("leave-one-set-out", out_of_sample)):
        log(
            f"  {'all sets':<22} {label}: {pooled['detected']}/{pooled['incidents']} incidents, "
            f"median delay {pooled['median_delay_min']} min, {pooled['false_events']} false "
            f"({pooled['false_events_per_day']}/day over {pooled['days']} days)"
        )
    peers: dict[str, Any] = {}
    for together in (2, 3):
        with_peers = rule_choice.score_rule(RULE, cases, peers_together=together)
        pooled = incidents.pooled(
            [incidents.Outcome(n, "trailing", with_peers[n], 0.0) for n in names]
        )
        peers[str(together)] = pooled
        log(
            f"  per-peer view, {together} peers out at once, beside the shipped rule: "
            f"{pooled['detected']}/{pooled['incidents']}, {pooled['false_events']} false"
        )
    hourly: dict[str, Any] = {}
    slammer_case = next((c for c in cases if c.name == "slammer-2003"), None)
    if slammer_case is not None:
        band = FitParams(season_length=24, k=3.0, resolution_s=3600)
        for label, rule in (
            ("shipped", RULE),
            ("persist in steps", replace(RULE, confirm_s=10**9)),
        ):
            case = incidents.coarsened(slammer_case, 60, band, rule)
            e = incidents.evaluate(case, "trailing").scores
            hourly[label] = e.as_dict()
            log(f"  slammer-2003 in hours, {label} (persist {case.trailing.persist}): {_fmt(e)}")
    return {
        "chosen": chosen.as_dict(),
        "shipped": RULE.as_dict(),
        "shipped_is_chosen": chosen == RULE,
        "shipped_pooled": in_sample,
        "leave_one_out_pooled": out_of_sample,
        "leave_one_out": [
            {"case": h.case, "rule": h.rule.as_dict(), **h.scores.as_dict()} for h in held
        ],
        "per_peer_view": peers,
        "slammer_hourly": hourly,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=80_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--model-sample", type=int, default=2000)
    parser.add_argument("--prophet-sample", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="Ray Data fitting workers")
    parser.add_argument("--no-slammer", action="store_true")
    parser.add_argument(
        "--incidents-only",
        action="store_true",
        help="only the real labelled incident sets (no stack, no 80,000 series)",
    )
    parser.add_argument(
        "--detectors",
        default=",".join(incidents.DETECTORS),
        help="detectors scored on the real sets, comma-separated (e.g. 'trailing' to "
        "iterate in seconds; Prophet takes minutes)",
    )
    parser.add_argument(
        "--choose-trailing",
        action="store_true",
        help="also choose the trailing rule on the real sets and score it leave-one-set-out",
    )
    args = parser.parse_args()
    detectors = tuple(d for d in args.detectors.split(",") if d)
    unknown = sorted(set(detectors) - set(incidents.DETECTORS))
    if unknown:
        parser.error(f"unknown detectors {unknown}; known: {', '.join(incidents.DETECTORS)}")

    log(f"real labelled incidents under {DATA}, event by event:")
    real = real_incidents(detectors) if DATA.is_dir() else {}
    default = real.get("statsforecast", {})
    headline = {
        "event_recall": default.get("event_recall"),
        "median_delay_min": default.get("median_delay_min"),
        "false_events_per_day": default.get("false_events_per_day"),
    }
    choice = trailing_choice() if args.choose_trailing and DATA.is_dir() else None
    if args.incidents_only:
        print(json.dumps({**headline, "incidents": real, "trailing_choice": choice}))
        return

    log(f"generating {args.series:,} series x {args.days * 24} hourly steps ...")
    data = generate(args.series, days=args.days, seed=11)
    log(f"{int(data.labels.sum()):,} anomalous steps of {data.labels.size:,}")

    log(f"statsforecast models on samples (the default is {FitParams().model}):")
    models = model_choice(data, args.model_sample)

    stack = fit_through_stack(data, args.workers)
    total_s = stack["submit_to_finish_s"]
    series_per_s = args.series / total_s
    log(
        f"job vs model: {series_per_s:,.1f} series/s submit to finish, "
        f"{stack['job']['series_per_s']} inside the job, {models[0]['series_per_s']:,.1f} "
        f"for {models[0]['model']} alone ({series_per_s / models[0]['series_per_s']:.2f}x)"
    )

    sample = subset(data, args.prophet_sample)
    log(f"Prophet on {args.prophet_sample} series ...")
    prophet_rate, prophet = timed_score(sample, replace(FitParams(), engine="prophet"))
    _, default_on_sample = timed_score(sample, FitParams())
    projected = args.series / prophet_rate
    log(
        f"Prophet: {prophet_rate:.1f} series/s -> {projected / 60:.0f} min for {args.series:,}; "
        f"F1 on the sample: Prophet {prophet.f1:.3f}, statsforecast {default_on_sample.f1:.3f}"
    )

    slammer_out: dict[str, Any] = {}
    path = SLAMMER / "slammer-2003.csv"
    if not args.no_slammer and path.exists():
        labelled = slammer.load(path)
        runs: tuple[tuple[str, dict[str, Any]], ...] = (
            ("statsforecast", {}),
            ("prophet", {"seasons": (1440,), "ks": (3.0, 5.0), "step": 240}),
        )
        for engine, kwargs in runs:
            started = time.perf_counter()
            result = slammer.evaluate(labelled, replace(FitParams(), engine=engine), **kwargs)
            slammer_out[engine] = {
                **result.as_dict(),
                "seconds": round(time.perf_counter() - started, 1),
            }
            t = result.test
            log(
                f"Slammer, {engine}: season {result.season_length} min, k {result.k:g} chosen "
                f"on rows < {result.split_row}; unseen half P {t.precision:.3f} "
                f"R {t.recall:.3f} F1 {t.f1:.3f}"
            )

    summary = {
        "series": args.series,
        "total_s": round(total_s, 1),
        "job_s": stack["job"]["seconds"],
        "series_per_s": round(series_per_s, 1),
        "load_s": stack["load_s"],
        "store": stack["store"],
        "f1": stack["accuracy"]["f1"],
        "precision": stack["accuracy"]["precision"],
        "recall": stack["accuracy"]["recall"],
        "prophet_series_per_s": round(prophet_rate, 2),
        "prophet_projected_s": round(projected, 0),
        "prophet_f1": prophet.f1,
        "sample_f1": default_on_sample.f1,
        "models": models,
        "slammer": slammer_out,
        **headline,
        "job_vs_model_speed": round(series_per_s / models[0]["series_per_s"], 3),
        "job_series_per_s_inside": stack["job"]["series_per_s"],
        "job_phases_s": stack["job"].get("phases_s"),
        "trailing_anomalies": stack["job"].get("trailing_anomalies"),
        "model_series_per_s": models[0]["series_per_s"],
        "incidents": real,
        "trailing_choice": choice,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
