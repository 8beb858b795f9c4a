"""Materialization: the newest features of every session into the online store.

Besides Feast's own ``materialize_incremental``, it records which sessions the
online store now holds (:data:`~bgp_orchestrator.flaps.predictor.SESSIONS_KEY`)
and when it finished (:data:`~bgp_orchestrator.flaps.predictor.MATERIALIZED_KEY`),
which is what predictors watch to refresh their copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bgp_orchestrator.flaps.feature_store import TTL, apply, materialize, open_store, read_offline
from bgp_orchestrator.flaps.features import ENTITY
from bgp_orchestrator.flaps.predictor import MATERIALIZED_KEY, SESSIONS_KEY
from bgp_orchestrator.settings import Settings


@dataclass(frozen=True)
class Materialized:
    end: datetime
    sessions: int
    seconds: float


def recent_sessions(settings: Settings, end: datetime) -> list[str]:
    """Sessions with feature rows younger than the feature view's TTL."""
    import pyarrow.compute as pc

    table = read_offline(settings, [ENTITY], end - TTL, end)
    if table is None:
        return []
    return [str(s) for s in pc.unique(table.column(ENTITY)).to_pylist()]


def run(settings: Settings, redis_url: str, end: datetime | None = None) -> Materialized:
    import redis

    started = time.perf_counter()
    end = end or datetime.now(UTC)
    store = open_store(settings, redis_url)
    apply(store, settings)
    materialize(store, end)
    sessions = recent_sessions(settings, end)
    client = redis.Redis.from_url(redis_url)
    try:
        staging = f"{SESSIONS_KEY}:staging"
        pipe = client.pipeline(transaction=True)
        pipe.delete(staging)
        for start in range(0, len(sessions), 10_000):
            pipe.sadd(staging, *sessions[start : start + 10_000])
        if sessions:
            pipe.rename(staging, SESSIONS_KEY)
        else:
            pipe.delete(SESSIONS_KEY)
        pipe.set(MATERIALIZED_KEY, end.isoformat())
        pipe.execute()
    finally:
        client.close()
    return Materialized(end, len(sessions), time.perf_counter() - started)
