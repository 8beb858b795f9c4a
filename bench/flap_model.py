"""Flap model: training at 8,000,000 rows and serving all 80,000 sessions.

    ./dev bench-flap                       # 80,000 sessions x 100 windows
    ./dev bench-flap --sessions 20000      # a quicker look

Starts its own stack (`bgpo up` in a temporary data directory on free ports),
then, in one run:

1. simulates 80,000 sessions x 100 five-minute windows (labels are the
   simulation's ground truth) and writes the features to Parquet;
2. trains single-process ``xgboost.train`` on the training part (the
   baseline), then submits ``jobs.train_flap_model`` with ``ray job submit``
   to the stack's Ray head on the same data and parameters; also submits the
   job on a tiny data set to measure Ray Train's fixed start-up cost;
3. reports ROC-AUC / PR-AUC / precision in the top 1 % of the model and of
   the recent-flap-count baseline on the time-split test part;
4. materializes the newest window of every session into Redis (Feast),
   waits for the predictor to serve the new model, scores all 80,000 sessions
   through `POST /api/v1/ml/predict` (batches of 2,000, 4 in flight), then measures
   single-session predictions with 100 concurrent clients;
5. compares onnxruntime with native XGBoost prediction on one 80,000-row batch.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
from bench_stack import Stack, log

from bgp_orchestrator.flaps import materialization
from bgp_orchestrator.flaps.dataset import features_and_labels
from bgp_orchestrator.flaps.feature_store import write_offline
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, LABEL, TIMESTAMP
from bgp_orchestrator.flaps.onnx_model import OnnxFlapModel
from bgp_orchestrator.flaps.training import (
    DEFAULT_PARAMS,
    DEFAULT_ROUNDS,
    LabelSpec,
    baseline_metrics,
    evaluate,
    time_split,
    xy,
)
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.simulation.sessions import SessionSimulation, simulate_windows

#: The platform scores every simulated session (a tenant reads only its own peers'; the
#: development API takes the role from this header on loopback).
HEADERS = {"X-Role": "platform-admin"}


def write_parquet(frame: pd.DataFrame, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    columns = [ENTITY, TIMESTAMP, *FEATURES, LABEL]
    frame[columns].to_parquet(folder / "data.parquet", index=False, row_group_size=500_000)


def single_process(frame: pd.DataFrame) -> tuple[float, Any, pd.DataFrame]:
    import xgboost

    labelled = frame[frame[LABEL].notna()]
    split = time_split(labelled[TIMESTAMP])
    train, valid, test = (split.part(labelled, p) for p in ("train", "validation", "test"))
    started = time.perf_counter()
    (xt, yt), (xv, yv) = xy(train), xy(valid)
    dtrain, dvalid = xgboost.DMatrix(xt, label=yt), xgboost.DMatrix(xv, label=yv)
    booster = xgboost.train(
        {**DEFAULT_PARAMS, "nthread": os.cpu_count() or 1},
        dtrain,
        num_boost_round=DEFAULT_ROUNDS,
        evals=[(dvalid, "validation")],
        verbose_eval=False,
    )
    return time.perf_counter() - started, booster, test


async def score_all(url: str, sessions: list[str], batch: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    errors = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(chunk: list[str]) -> None:
            nonlocal errors
            async with gate:
                r = await client.post(
                    "/api/v1/ml/predict", json={"sessions": chunk}, headers=HEADERS
                )
            if r.status_code != 200:
                raise SystemExit(f"scoring failed: {r.status_code} {r.text[:300]}")
            # orjson: the stdlib parser would cost the client ~0.5 s of CPU for
            # 80,000 answers, on the cores the server shares.
            errors += sum(1 for p in orjson.loads(r.content)["predictions"] if p.get("error"))

        started = time.perf_counter()
        await asyncio.gather(
            *(one(sessions[i : i + batch]) for i in range(0, len(sessions), batch))
        )
        seconds = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{errors} sessions had no prediction")
    return seconds


async def latency(url: str, sessions: list[str], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` concurrent users, each asking for one session at a time.

    aiohttp, not httpx: at 100 concurrent connections httpx's pool costs the
    load generator a whole core and it, not the server, sets the pace.
    """
    import aiohttp

    samples: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, headers=HEADERS) as client:

        async def user(i: int) -> None:
            nonlocal failures
            k = i
            while time.perf_counter() < deadline:
                sid = sessions[k % len(sessions)]
                k += clients
                t = time.perf_counter()
                async with client.post("/api/v1/ml/predict", json={"sessions": [sid]}) as r:
                    await r.read()
                    if r.status == 200:
                        samples.append((time.perf_counter() - t) * 1000)
                    else:
                        failures += 1

        await asyncio.gather(*(user(i) for i in range(clients)))
    samples.sort()
    return {
        "requests": len(samples),
        "rps": len(samples) / seconds,
        "p50": statistics.median(samples),
        "p99": samples[int(len(samples) * 0.99) - 1],
        "failures": failures,
    }


async def wait_served(url: str, sessions: list[str], version: int, within_s: float) -> float:
    """Until the predictor serves ``version`` from its feature copy (fast answers)."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.perf_counter() - started < within_s:
            t = time.perf_counter()
            r = await client.post(
                "/api/v1/ml/predict", json={"sessions": sessions[:1000]}, headers=HEADERS
            )
            took = time.perf_counter() - t
            if r.status_code == 200:
                answers = r.json()["predictions"]
                if all(a.get("model_version") == version for a in answers) and took < 0.5:
                    return time.perf_counter() - started
            await asyncio.sleep(2)
    raise SystemExit(f"the predictor did not serve v{version} from its copy within {within_s}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=80_000)
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0, help="latency phase seconds")
    parser.add_argument("--score-batch", type=int, default=2000, help="sessions per request")
    parser.add_argument("--score-concurrency", type=int, default=4, help="requests in flight")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bgpo-bench-flap-"))
    stack = Stack(tmp / "stack")
    spec = LabelSpec()
    log(f"simulating {args.sessions:,} sessions x {args.windows} windows")
    started = time.perf_counter()
    base = simulate_windows(SessionSimulation(sessions=args.sessions, windows=args.windows, seed=7))
    frame = features_and_labels(base, spec)
    del base
    data_dir = tmp / "train-data"
    write_parquet(frame, data_dir)
    rows = len(frame)
    log(f"  {rows:,} rows ({time.perf_counter() - started:.0f} s with features and labels)")

    log("single-process xgboost.train (baseline)")
    train_xgb_s, xgb_booster, test = single_process(frame)
    xgb_metrics = evaluate(test[LABEL].to_numpy(), xgb_booster.predict(
        __import__("xgboost").DMatrix(xy(test)[0])))  # fmt: skip
    base_metrics = baseline_metrics(test)
    log(f"  {train_xgb_s:.1f} s, ROC-AUC {xgb_metrics['roc_auc']:.4f}")

    tiny_dir = tmp / "tiny-data"
    tiny = frame[frame[ENTITY].isin(frame[ENTITY].unique()[:200])]
    write_parquet(tiny, tiny_dir)

    log("bgpo up")
    try:
        stack.bgpo("up")
        log("Ray Train start-up cost: the job on 200 sessions")
        tiny_s, _ = stack.submit(
            "jobs.train_flap_model", "--data", str(tiny_dir), "--workers", "2",
            "--cpus-per-worker", "1",
        )  # fmt: skip
        log(f"  {tiny_s:.1f} s")
        log(f"Ray job: jobs.train_flap_model on {rows:,} rows, 2 workers")
        train_ray_s, out = stack.submit(
            "jobs.train_flap_model", "--data", str(data_dir), "--workers", "2",
            "--cpus-per-worker", "1", "--activate",
        )  # fmt: skip
        result = json.loads(
            next(x for x in reversed(out.splitlines()) if x.startswith('{"version"'))
        )
        version = int(result["version"])
        log(f"  {train_ray_s:.1f} s, model v{version}, ROC-AUC {result['roc_auc']:.4f}")

        # Serving: the newest window of every session, moved to "now".
        latest = frame.sort_values(TIMESTAMP).groupby(ENTITY, sort=False).tail(1).copy()
        latest[TIMESTAMP] = pd.Timestamp.now(tz="UTC").floor("min")
        write_offline(stack.settings, latest, "bench")
        sessions = latest[ENTITY].tolist()
        del frame
        log(f"materializing {len(sessions):,} sessions into Redis")
        done = materialization.run(stack.settings, endpoints(stack.settings).redis_url)
        log(f"  {done.seconds:.1f} s")
        url = stack.settings.api_url
        # Predictors poll for a finished materialization every BGPO_MODEL_POLL_S and
        # reload their copy (about a second): give them that before measuring.
        time.sleep(stack.settings.model_poll_s + 5)
        waited = asyncio.run(wait_served(url, sessions, version, within_s=300))
        log(f"  predictor serving v{version} from its feature copy after {waited:.0f} s")

        log(
            f"scoring every session through the API (batches of {args.score_batch:,}, "
            f"{args.score_concurrency} in flight)"
        )
        score_s = asyncio.run(score_all(url, sessions, args.score_batch, args.score_concurrency))
        log(f"  {len(sessions):,} sessions in {score_s:.2f} s")
        log(f"single-session predictions, {args.clients} concurrent clients, {args.duration:.0f} s")
        lat = asyncio.run(latency(url, sessions, args.clients, args.duration))
        log(f"  {lat['rps']:.0f} req/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
    finally:
        stack.bgpo("down")

    model_dir = next((stack.settings.data_dir / "models" / "flap").iterdir())
    onnx_model = OnnxFlapModel(model_dir / "model.onnx", threads=os.cpu_count() or 1)
    import xgboost

    ray_booster = xgboost.Booster()
    ray_booster.load_model(str(model_dir / "model.ubj"))
    batch = xy(test.iloc[: len(sessions)])[0]
    t = time.perf_counter()
    onnx_model.predict(batch)
    onnx_s = time.perf_counter() - t
    t = time.perf_counter()
    ray_booster.inplace_predict(batch)
    native_s = time.perf_counter() - t

    print()
    print(f"{'':34}{'model':>10}{'baseline':>10}")
    for key in ("roc_auc", "pr_auc", "precision_top_1pct"):
        print(f"{key:34}{result[key]:>10.4f}{base_metrics[key]:>10.4f}")
    print(f"training rows {rows:,}; single-process xgboost {train_xgb_s:.1f} s, Ray job "
          f"{train_ray_s:.1f} s ({train_ray_s / train_xgb_s:.2f}x), of which fixed Ray "
          f"start-up ~{tiny_s:.1f} s")  # fmt: skip
    print(f"score all {len(sessions):,} sessions: {score_s:.2f} s; single predict p50 "
          f"{lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms at {args.clients} clients "
          f"({lat['rps']:.0f} req/s, {lat['failures']} failures)")  # fmt: skip
    print(f"{len(batch):,}-row batch: onnxruntime {onnx_s * 1000:.1f} ms, native XGBoost "
          f"{native_s * 1000:.1f} ms (ratio {onnx_s / native_s:.2f})")  # fmt: skip
    print(
        json.dumps(
            {
                "rows": rows,
                "train_ray_s": round(train_ray_s, 2),
                "train_xgb_s": round(train_xgb_s, 2),
                "train_ratio": round(train_ray_s / train_xgb_s, 2),
                "ray_fixed_startup_s": round(tiny_s, 2),
                "roc_auc": round(result["roc_auc"], 4),
                "baseline_roc_auc": round(base_metrics["roc_auc"], 4),
                "pr_auc": round(result["pr_auc"], 4),
                "baseline_pr_auc": round(base_metrics["pr_auc"], 4),
                "xgb_single_roc_auc": round(xgb_metrics["roc_auc"], 4),
                "materialize_s": round(done.seconds, 2),
                "score_all_s": round(score_s, 3),
                "score_batch": args.score_batch,
                "predict_p50_ms": round(lat["p50"], 2),
                "predict_p99_ms": round(lat["p99"], 2),
                "predict_rps": round(lat["rps"], 1),
                "onnx_vs_xgboost_ratio": round(onnx_s / native_s, 3),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
