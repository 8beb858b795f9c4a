"""Daily usage per tenant, counted where the work happens and written in batches.

The hot paths (the API's middleware, the session-stats worker) call
:meth:`UsageRecorder.add`: one dict increment, no I/O. A background task
(:meth:`UsageRecorder.run`) upserts what accumulated into ``usage_daily`` every
``interval_s`` seconds in one statement, adding to the day's row; a failed
flush keeps its counts for the next one, so PostgreSQL being away costs no
usage (only what a killed process held since its last flush, a few seconds).

Counters (``api_calls``, ``updates_processed``) add up over the day; gauges
(``sessions_monitored``, ``prefixes_monitored``) keep the day's highest value
and are taken from the inventory by :func:`snapshot_inventory` at each flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Literal

import asyncpg

from bgp_orchestrator.storage.database import Database

log = logging.getLogger(__name__)

Metric = Literal["api_calls", "updates_processed", "sessions_monitored", "prefixes_monitored"]
COUNTERS: tuple[Metric, ...] = ("api_calls", "updates_processed")
GAUGES: tuple[Metric, ...] = ("sessions_monitored", "prefixes_monitored")
METRICS: tuple[Metric, ...] = COUNTERS + GAUGES

_EPOCH = date(1970, 1, 1)

ADD = """
INSERT INTO usage_daily (tenant_id, day, metric, value)
SELECT t, d, m, v FROM unnest($1::bigint[], $2::date[], $3::text[], $4::bigint[]) AS u(t, d, m, v)
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = u.t)
ON CONFLICT (tenant_id, day, metric) DO UPDATE SET value = usage_daily.value + EXCLUDED.value
"""

SNAPSHOT = """
INSERT INTO usage_daily (tenant_id, day, metric, value)
SELECT tenant_id, $1::date, metric, n FROM (
    SELECT tenant_id, 'sessions_monitored' AS metric, count(*) AS n
    FROM peering_sessions WHERE admin_state <> 'disabled' GROUP BY tenant_id
    UNION ALL
    SELECT tenant_id, 'prefixes_monitored', count(*) FROM prefixes GROUP BY tenant_id
) AS inventory
ON CONFLICT (tenant_id, day, metric)
DO UPDATE SET value = GREATEST(usage_daily.value, EXCLUDED.value)
"""


def utc_day(timestamp: float) -> date:
    return _EPOCH + timedelta(days=int(timestamp // 86400))


class UsageRecorder:
    """Counts per (tenant, UTC day, metric) in memory; :meth:`flush` writes them to
    ``db`` (None until the owner opens it: counts wait)."""

    name = "usage-recorder"

    def __init__(
        self,
        db: Database | None,
        interval_s: float = 30.0,
        *,
        snapshot: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.interval_s = interval_s
        self.snapshot = snapshot
        self.clock = clock
        self._pending: defaultdict[tuple[int, int, str], int] = defaultdict(int)
        self.flushed = 0
        self.failed_flushes = 0

    def add(self, tenant_id: int, metric: Metric, count: int = 1) -> None:
        """Count ``count`` of ``metric`` for the tenant today (no I/O)."""
        if count > 0:
            self._pending[(tenant_id, int(self.clock() // 86400), metric)] += count

    def add_many(self, counts: Mapping[int, int], metric: Metric) -> None:
        day = int(self.clock() // 86400)
        for tenant_id, count in counts.items():
            if count > 0:
                self._pending[(tenant_id, day, metric)] += count

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write what accumulated; rows written. On failure the counts stay pending."""
        if self.db is None:  # not opened yet (the app's lifespan sets it)
            return 0
        batch, self._pending = self._pending, defaultdict(int)
        try:
            if batch:
                keys = list(batch)
                async with self.db.connection() as conn:
                    await conn.execute(
                        ADD,
                        [k[0] for k in keys],
                        [_EPOCH + timedelta(days=k[1]) for k in keys],
                        [k[2] for k in keys],
                        [batch[k] for k in keys],
                    )
            if self.snapshot:
                async with self.db.connection() as conn:
                    await snapshot_inventory(conn, utc_day(self.clock()))
        except Exception:
            for key, count in batch.items():
                self._pending[key] += count
            self.failed_flushes += 1
            raise
        self.flushed += len(batch)
        return len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            try:
                await self.flush()
            except Exception:
                log.warning(
                    "usage flush failed; keeping the counts for the next one", exc_info=True
                )

    def stats(self) -> dict[str, Any]:
        return {"pending": self.pending, "flushed": self.flushed, "failed": self.failed_flushes}


async def snapshot_inventory(conn: asyncpg.Connection, day: date) -> None:
    """Record today's sessions and prefixes under monitoring of every tenant."""
    await conn.execute(SNAPSHOT, day)


async def daily(
    conn: asyncpg.Connection, tenant_id: int, first: date, last: date
) -> dict[str, list[tuple[date, int]]]:
    """Per metric, (day, value) for every day from ``first`` to ``last`` (zeros filled)."""
    rows = await conn.fetch(
        "SELECT day, metric, value FROM usage_daily WHERE tenant_id = $1 AND day BETWEEN $2 AND $3",
        tenant_id,
        first,
        last,
    )
    found = {(r["day"], r["metric"]): int(r["value"]) for r in rows}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return {m: [(d, found.get((d, m), 0)) for d in days] for m in METRICS}


async def totals(
    conn: asyncpg.Connection, tenant_id: int, first: date, last: date
) -> dict[str, int]:
    """Counters summed and gauges at their peak over ``first`` .. ``last``."""
    rows = await conn.fetch(
        "SELECT metric, sum(value) AS total, max(value) AS peak FROM usage_daily "
        "WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 GROUP BY metric",
        tenant_id,
        first,
        last,
    )
    out: dict[str, int] = dict.fromkeys(METRICS, 0)
    for r in rows:
        out[r["metric"]] = int(r["total"] if r["metric"] in COUNTERS else r["peak"])
    return out


def tenants_of_sessions(
    session_tenants: Mapping[str, Sequence[int]], counts: Mapping[str, int]
) -> dict[int, int]:
    """Updates per tenant from updates per peer address (a peer may serve several tenants)."""
    out: defaultdict[int, int] = defaultdict(int)
    for address, count in counts.items():
        for tenant_id in session_tenants.get(address, ()):
            out[tenant_id] += count
    return dict(out)
