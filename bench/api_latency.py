"""API latency and throughput: the peering API on Ray Serve against the same app on plain uvicorn.

    ./dev bench                      # configured ingress (HAProxy), 30 s per run
    ./dev bench --ingress haproxy,proxy --duration 60

Starts its own stack (embedded PostgreSQL, local Ray head) in a temporary data
directory on free ports, seeds one tenant with 1,000 sessions and 1,024
prefixes, then drives each target with locust (headless, 100 users, no wait,
read-heavy mix of bench/locustfile_api.py). The baseline, plain uvicorn with
one worker running the same FastAPI app over the same database, is measured
in the same run, before the Ray head starts. Prints RPS, p50, p99, errors and
the Serve/uvicorn ratios; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bgp_orchestrator.local.ports import free_port, free_ports_env

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "bench" / "locustfile_api.py"
SESSIONS = 1000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def bgpo(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bgp_orchestrator.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"bgpo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


async def seed(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE tenants, peer_prefix_counts RESTART IDENTITY CASCADE")
        tenant = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('bench', 'Bench') RETURNING id"
        )
        await conn.executemany(
            "INSERT INTO autonomous_systems (tenant_id, asn, name) VALUES ($1, $2, $3)",
            [(tenant, 64500 + i, f"AS{64500 + i}") for i in range(50)],
        )
        await conn.executemany(
            "INSERT INTO peering_sessions (tenant_id, local_asn, peer_asn, peer_address, "
            "peering_lan, interconnect, ixp_name, max_prefixes) "
            "VALUES ($1, 64500, $2, $3::inet, '100.64.0.0/16', 'ixp', 'BENCH-IX', 1000)",
            [
                (tenant, 65000 + i % 100, f"100.64.{i // 250}.{i % 250 + 1}")
                for i in range(SESSIONS)
            ],
        )
        await conn.executemany(
            "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
            "VALUES ($1, $2::cidr, ARRAY[64500]::bigint[], 24)",
            [(tenant, f"10.{i // 256}.{i % 256}.0/24") for i in range(1024)],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def run_locust(url: str, duration: int, users: int, label: str, out_dir: Path) -> dict[str, Any]:
    prefix = out_dir / label
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{duration}s",
        "-H",
        url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "BENCH_SESSIONS": str(SESSIONS)}
    subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=False, timeout=duration + 120
    )
    with open(f"{prefix}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    agg = rows["Aggregated"]
    requests = int(agg["Request Count"])
    return {
        "rps": float(agg["Requests/s"]),
        "p50_ms": float(agg["50%"]),
        "p99_ms": float(agg["99%"]),
        "requests": requests,
        "failures": int(agg["Failure Count"]),
    }


def replicas_in_serve_config() -> int:
    from bgp_orchestrator.stack import serve_config

    app = serve_config.load()["applications"][0]
    return int(app["deployments"][0].get("num_replicas", 1))


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per locust run")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument(
        "--ingress",
        default="haproxy",
        help="comma-separated Serve ingresses to measure: haproxy, proxy",
    )
    parser.add_argument(
        "--uvicorn-workers",
        default="1,2",
        help="comma-separated uvicorn worker counts; the first is the baseline",
    )
    args = parser.parse_args()
    ingresses = [i.strip() for i in args.ingress.split(",") if i.strip()]
    worker_counts = [int(w) for w in args.uvicorn_workers.split(",") if w.strip()]

    work = Path(tempfile.mkdtemp(prefix="bgpo-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BGPO_")}
    env["BGPO_DATA_DIR"] = str(work / "data")
    env.update(free_ports_env())
    db_url = f"postgresql://postgres@127.0.0.1:{env['BGPO_EMBEDDED_POSTGRES_PORT']}/bgpo"
    results: dict[str, Any] = {}
    try:
        log("starting embedded services and migrating (bgpo migrate needs PostgreSQL up)")
        from bgp_orchestrator.local.services import embedded_services
        from bgp_orchestrator.settings import Settings

        settings = Settings(**{k[5:].lower(): v for k, v in env.items() if k.startswith("BGPO_")})
        for svc in embedded_services(settings):
            svc.start()
        bgpo(env, "migrate")
        asyncio.run(seed(db_url))

        for workers in worker_counts:
            label = "uvicorn" if workers == worker_counts[0] else f"uvicorn-{workers}w"
            log(f"plain uvicorn, {workers} worker(s), {args.users} users, {args.duration}s")
            port = free_port()
            uvicorn = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bgp_orchestrator.api.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--workers",
                    str(workers),
                ],
                env={**env, "BGPO_DATABASE_URL": db_url},
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz")
                results[label] = run_locust(
                    f"http://127.0.0.1:{port}", args.duration, args.users, label, work
                )
            finally:
                uvicorn.terminate()
                uvicorn.wait(10)

        for ingress in ingresses:
            log(f"Ray Serve, ingress={ingress}: bgpo up")
            run_env = {**env, "BGPO_SERVE_INGRESS": ingress}
            bgpo(run_env, "up")
            url = f"http://127.0.0.1:{env['BGPO_API_PORT']}"
            wait_http(f"{url}/readyz")
            log(f"Ray Serve, ingress={ingress}: {args.users} users, {args.duration}s")
            run_locust(url, 5, args.users, f"warmup-{ingress}", work)
            results[f"serve-{ingress}"] = run_locust(
                url, args.duration, args.users, f"serve-{ingress}", work
            )
            bgpo(run_env, "down")
    finally:
        bgpo(env, "down")

    base = results["uvicorn"]
    serve_replicas = replicas_in_serve_config()
    print()
    print(
        f"{'target':<22}{'RPS':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>11}{'failures':>10}"
        f"{'RPS ratio':>11}"
    )
    for name, r in results.items():
        ratio = r["rps"] / base["rps"] if base["rps"] else 0.0
        print(
            f"{name:<22}{r['rps']:>10.0f}{r['p50_ms']:>10.0f}{r['p99_ms']:>10.0f}"
            f"{r['requests']:>11}{r['failures']:>10}{ratio:>11.2f}"
        )
    chosen = results[f"serve-{ingresses[0]}"]
    summary = {
        "ingress": ingresses[0],
        "serve_replicas": serve_replicas,
        "uvicorn_workers": worker_counts[0],
        "users": args.users,
        "duration_s": args.duration,
        "serve_rps": round(chosen["rps"], 1),
        "serve_p50_ms": chosen["p50_ms"],
        "serve_p99_ms": chosen["p99_ms"],
        "serve_failures": chosen["failures"],
        "uvicorn_rps": round(base["rps"], 1),
        "uvicorn_p50_ms": base["p50_ms"],
        "uvicorn_p99_ms": base["p99_ms"],
        "rps_ratio_serve_uvicorn": round(chosen["rps"] / base["rps"], 3) if base["rps"] else None,
        "others": {k: v for k, v in results.items() if k not in ("uvicorn",)},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
