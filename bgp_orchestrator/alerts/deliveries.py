"""Webhook and e-mail deliveries in PostgreSQL: lease, outcome, give-up, and what the API shows.

A delivery is ``pending`` until it is ``delivered`` or ``failed`` (given up).
Leasing one counts an attempt and hides it for the lease time, so an attempt
whose dispatcher dies before writing the outcome is still counted, and the
delivery comes back when the lease runs out. Outcomes are fenced by the
attempt they belong to: a stale dispatcher cannot overwrite a newer attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

#: Takes due deliveries, oldest first, at most ``slots`` per webhook ($1/$2 list the
#: webhooks with deliveries in flight and their free slots; others get $3) and $5 in all.
LEASE = """
WITH room AS (
    SELECT * FROM unnest($1::bigint[], $2::int[]) AS r(webhook_id, slots)
), due AS (
    SELECT DISTINCT d.webhook_id, coalesce(r.slots, $3::int) AS slots
    FROM webhook_deliveries d LEFT JOIN room r ON r.webhook_id = d.webhook_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND d.attempts < $4::int
      AND coalesce(r.slots, $3::int) > 0
), picked AS (
    SELECT p.id FROM due CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.webhook_id = due.webhook_id AND d.status = 'pending'
          AND d.next_attempt_at <= now() AND d.attempts < $4::int
        ORDER BY d.id LIMIT due.slots
        FOR UPDATE SKIP LOCKED
    ) p
    ORDER BY p.id LIMIT $5::int
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => $6::float8)
FROM picked WHERE d.id = picked.id
RETURNING d.id, d.webhook_id, d.event_id, d.attempts
"""

#: Gives up deliveries whose last allowed attempt never reported (its lease ran out).
EXPIRE = """
UPDATE webhook_deliveries
SET status = 'failed', failed_at = now(),
    last_error = concat_ws('; ', last_error, 'attempt ' || attempts
                           || ' never reported (the dispatcher stopped or crashed)')
WHERE status = 'pending' AND attempts >= $1::int AND next_attempt_at <= now()
"""

DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), last_error = NULL
WHERE id = $1 AND status = 'pending'
"""

#: A failed attempt: retried after ``base * 2^(attempts-1)`` seconds (at most an hour),
#: or given up at the maximum.
FAILED = """
UPDATE webhook_deliveries
SET last_error = $2::text,
    status = CASE WHEN attempts >= $3::int THEN 'failed' ELSE 'pending' END,
    failed_at = CASE WHEN attempts >= $3::int THEN now() END,
    next_attempt_at = now() + make_interval(
        secs => least($4::float8 * power(2, attempts - 1), 3600))
WHERE id = $1 AND status = 'pending' AND attempts = $5::int
RETURNING status
"""

TARGET = """
SELECT w.tenant_id, w.url, w.format, w.channel, w.secret_ciphertext, e.event, e.conflict_id
FROM webhooks w JOIN conflict_events e ON e.id = $2
WHERE w.id = $1
"""

_OUT = """
SELECT d.id, d.webhook_id, d.event_id, e.event, e.conflict_id, d.status, d.attempts,
       d.last_error, d.created_at, d.last_attempt_at,
       CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.delivered_at, d.failed_at
FROM webhook_deliveries d JOIN conflict_events e ON e.id = d.event_id
"""


async def lease(
    conn: asyncpg.Connection,
    in_flight: Mapping[int, int],
    per_webhook: int,
    total: int,
    max_attempts: int,
    lease_s: float,
) -> list[asyncpg.Record]:
    """Lease due deliveries: per webhook up to ``per_webhook`` minus its ``in_flight``,
    ``total`` in all; each lease counts an attempt."""
    if total <= 0:
        return []
    hooks = list(in_flight)
    slots = [max(0, per_webhook - in_flight[h]) for h in hooks]
    return list(await conn.fetch(LEASE, hooks, slots, per_webhook, max_attempts, total, lease_s))


#: A webhook's deliveries, all or of some statuses ($2: empty for all).
_MATCH = "d.webhook_id = $1 AND (cardinality($2::text[]) = 0 OR d.status = ANY($2::text[]))"
_PAGE = f"{_OUT} WHERE {_MATCH} ORDER BY d.id DESC LIMIT $3 OFFSET $4"
_COUNT = (
    "SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = $1 "
    "AND (cardinality($2::text[]) = 0 OR d.status = ANY($2::text[]))"
)


async def page(
    conn: asyncpg.Connection, webhook_id: int, statuses: list[str], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A webhook's deliveries, newest first, optionally of some statuses only."""
    rows = await conn.fetch(_PAGE, webhook_id, statuses, limit, offset)
    total = await conn.fetchval(_COUNT, webhook_id, statuses)
    return [dict(r) for r in rows], int(total)


async def get(conn: asyncpg.Connection, webhook_id: int, delivery_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"{_OUT} WHERE d.webhook_id = $1 AND d.id = $2", webhook_id, delivery_id
    )
    return dict(row) if row is not None else None


async def retry(conn: asyncpg.Connection, webhook_id: int, delivery_id: int) -> bool:
    """Queue a failed delivery again, now, with a fresh set of attempts."""
    status = await conn.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
        "next_attempt_at = now(), failed_at = NULL "
        "WHERE webhook_id = $1 AND id = $2 AND status = 'failed'",
        webhook_id,
        delivery_id,
    )
    return bool(status.endswith(" 1"))
