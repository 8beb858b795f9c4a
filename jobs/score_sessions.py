"""Score every session in the online store with the serving flap model.

    ray job submit --address http://127.0.0.1:8265 -- python -m jobs.score_sessions

Asks the Serve predictor (the model it serves, the features it holds) in
batches, and upserts each session's probability into ``flap_predictions``;
prints the sessions most likely to flap.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bgp_orchestrator.flaps import registry
from bgp_orchestrator.flaps.predictor import SESSIONS_KEY
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import open_database

console = Console(stderr=True)


async def score(settings: Settings, batch: int, concurrency: int) -> dict[str, Any]:
    import redis.asyncio as aioredis
    from ray import serve

    ep = endpoints(settings)
    client = aioredis.from_url(ep.redis_url)
    try:
        members = await client.smembers(SESSIONS_KEY)  # type: ignore[misc]
        sessions = sorted(s.decode() for s in members)
    finally:
        await client.aclose()
    if not sessions:
        raise SystemExit("no materialized sessions: run jobs.materialize_features first")
    handle = serve.get_deployment_handle("FlapPredictor", app_name="predictor")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(concurrency)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("scoring sessions", total=len(sessions))

        async def one(chunk: list[str]) -> None:
            async with gate:
                answer = await handle.predict_many.remote(chunk)
            results.extend(answer)
            progress.advance(task, len(chunk))

        await asyncio.gather(
            *(one(sessions[i : i + batch]) for i in range(0, len(sessions), batch))
        )
    seconds = time.perf_counter() - started
    scored = [r for r in results if "probability" in r]
    by_version: dict[int, list[tuple[str, float, None]]] = {}
    for r in scored:
        by_version.setdefault(r["model_version"], []).append(
            (r["session_id"], r["probability"], None)
        )
    async with open_database(settings) as db, db.transaction() as conn:
        for version, rows in by_version.items():
            await registry.write_predictions(conn, version, rows)
    return {
        "sessions": len(sessions),
        "scored": len(scored),
        "errors": len(results) - len(scored),
        "seconds": seconds,
        "top": sorted(scored, key=lambda r: -r["probability"])[:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000, help="sessions per request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    args = parser.parse_args(argv)
    import ray

    ray.init(ignore_reinit_error=True, log_to_driver=False)
    outcome = asyncio.run(score(Settings(), args.batch, args.concurrency))
    table = Table("session", "flap probability", "model", title="most likely to flap")
    for r in outcome["top"]:
        table.add_row(r["session_id"], f"{r['probability']:.3f}", f"v{r['model_version']}")
    Console().print(table)
    print(
        f"scored {outcome['scored']:,} of {outcome['sessions']:,} sessions in "
        f"{outcome['seconds']:.2f} s ({outcome['errors']:,} without features)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
