"""Delivers conflict events to webhooks: at least once, retried with backoff, never lost.

Events come from ``conflict_events`` (written in the same transaction as the
conflict change). Fan-out creates one delivery per matching webhook exactly
once (a unique constraint); a delivery is leased before it is sent, so two
dispatchers never send the same one at the same time; failures are retried
after 2, 4, 8 ... seconds (at most an hour) and given up after 10 attempts.
Receivers can de-duplicate on the ``X-BGPO-Delivery`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bgp_orchestrator.alerts import formats
from bgp_orchestrator.storage import conflicts as conflict_store
from bgp_orchestrator.storage.database import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
LEASE_S = 60

FAN_OUT = """
WITH pending AS (
    SELECT id, conflict_id, tenant_id FROM conflict_events
    WHERE dispatched_at IS NULL ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED
), fan AS (
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT w.id, p.id FROM pending p
    JOIN conflicts c ON c.id = p.conflict_id
    JOIN webhooks w ON w.tenant_id = p.tenant_id AND w.enabled
        AND array_position(ARRAY['info','low','medium','high','critical'], c.severity)
            >= array_position(ARRAY['info','low','medium','high','critical'], w.min_severity)
        AND (cardinality(w.types) = 0 OR c.type = ANY(w.types))
    ON CONFLICT (webhook_id, event_id) DO NOTHING
)
UPDATE conflict_events SET dispatched_at = now() WHERE id IN (SELECT id FROM pending)
"""

LEASE = f"""
UPDATE webhook_deliveries SET next_attempt_at = now() + interval '{LEASE_S} seconds'
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id, webhook_id, event_id, attempts
"""


@dataclass
class DispatchStats:
    fanned_out: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0


#: Dispatch rounds failing in a row (PostgreSQL away) after which the dispatcher reports it.
MAX_FAILED_ROUNDS = 30


class AlertDispatcher:
    """A :class:`~bgp_orchestrator.service.Service`: one round per ``interval_s``."""

    name = "alert-dispatcher"

    def __init__(
        self,
        db: Database,
        timeout_s: float = 5.0,
        batch: int = 50,
        interval_s: float = 1.0,
        owns_db: bool = False,
    ) -> None:
        self.db = db
        self.timeout_s = timeout_s
        self.batch = batch
        self.interval_s = interval_s
        self.counters = DispatchStats()
        self.failed_rounds = 0
        self.last_error = ""
        self._owns_db = owns_db

    async def fan_out(self) -> int:
        async with self.db.transaction() as conn:
            status = await conn.execute(FAN_OUT)
        count = int(status.split()[-1])
        self.counters.fanned_out += count
        return count

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        async with self.db.transaction() as conn:
            leased = await conn.fetch(LEASE, self.batch)
        if not leased:
            return 0
        await asyncio.gather(*(self._deliver(client, row) for row in leased))
        return len(leased)

    async def _deliver(self, client: httpx.AsyncClient, lease: Any) -> None:
        async with self.db.connection() as conn:
            hook = await conn.fetchrow(
                "SELECT url, format FROM webhooks WHERE id = $1", lease["webhook_id"]
            )
            event = await conn.fetchrow(
                "SELECT event, conflict_id FROM conflict_events WHERE id = $1", lease["event_id"]
            )
            conflict = (await conflict_store.get(conn, event["conflict_id"])) if event else None
        if hook is None or event is None or conflict is None:
            return  # deleted meanwhile: the cascade removes the delivery
        for key in ("first_seen", "last_seen", "resolved_at", "state_changed_at", "created_at"):
            if conflict.get(key) is not None:
                conflict[key] = conflict[key].isoformat()
        render = formats.slack if hook["format"] == "slack" else formats.generic
        body = render(event["event"], lease["event_id"], conflict)
        error = None
        try:
            response = await client.post(
                hook["url"],
                json=body,
                timeout=self.timeout_s,
                headers={"X-BGPO-Event": event["event"], "X-BGPO-Delivery": str(lease["id"])},
            )
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        async with self.db.connection() as conn:
            if error is None:
                await conn.execute(
                    "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), "
                    "attempts = attempts + 1, last_error = NULL WHERE id = $1",
                    lease["id"],
                )
                self.counters.delivered += 1
                return
            attempts = lease["attempts"] + 1
            self.counters.failed_attempts += 1
            if attempts >= MAX_ATTEMPTS:
                self.counters.given_up += 1
                log.error(
                    "webhook %s gave up on delivery %s after %d attempts: %s",
                    hook["url"],
                    lease["id"],
                    attempts,
                    error,
                )
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = $2::int, last_error = $3::text, "
                "status = CASE WHEN $2::int >= $4::int THEN 'failed' ELSE 'pending' END, "
                "next_attempt_at = now() + make_interval(secs => least(power(2, $2::int), 3600)) "
                "WHERE id = $1",
                lease["id"],
                attempts,
                error,
                MAX_ATTEMPTS,
            )

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient() as client:
            while not stop.is_set():
                try:
                    await self.fan_out()
                    while await self.deliver_due(client) == self.batch:
                        pass
                    self.failed_rounds = 0
                except Exception as exc:
                    self.failed_rounds += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("alert dispatch round failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

    def health(self) -> list[str]:
        if self.failed_rounds >= MAX_FAILED_ROUNDS:
            return [f"{self.failed_rounds} dispatch rounds failed in a row: {self.last_error}"]
        return []

    def stats(self) -> dict[str, Any]:
        return {**asdict(self.counters), "failed_rounds": self.failed_rounds}

    async def aclose(self) -> None:
        if self._owns_db:
            await self.db.close()
