"""Conflicts in PostgreSQL: idempotent upserts from detectors, queries and state changes.

The upsert is idempotent: replaying the same observations (after a detector
restart) changes nothing: first/last seen are min/max, peers a bounded
union, and a resolved conflict reopens only for an observation newer than
its resolution. State changes of tenant conflicts are recorded in
``conflict_events`` by a trigger in the same transaction (the outbox webhooks
and the live stream read), so an event is never lost and never written twice.

Global observations (no tenant) are one row per prefix and type: their
``details`` keep a running count of observations (at least: a replay after a
restart counts again) and a capped, merged sample of origins; they raise no
events (no tenant subscribes to them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
import orjson

from bgp_orchestrator.detection.scenario import Expected
from bgp_orchestrator.detection.sink import SAMPLE_ORIGINS, Aggregate

#: Rows per statement: one round trip each, and a bounded time per statement.
UPSERT_CHUNK = 1000

# The peer list is capped at sink.MAX_PEERS (100) entries.
UPSERT = """
INSERT INTO conflicts AS c (key, tenant_id, type, severity, prefix, origin_asn, detail_key,
                            as_path, monitored_prefix, peers, first_seen, last_seen, state,
                            resolved_at, details)
SELECT i.key, i.tenant_id, i.type, i.severity, i.prefix::cidr, i.origin_asn, i.detail_key,
       i.as_path, i.monitored_prefix::cidr, i.peers, to_timestamp(i.first_seen),
       to_timestamp(i.last_seen),
       CASE WHEN i.resolved THEN 'resolved' ELSE 'ongoing' END,
       CASE WHEN i.resolved THEN to_timestamp(i.last_seen) END,
       i.details::jsonb
FROM jsonb_to_recordset($1::jsonb) AS i(
    key text, tenant_id bigint, type text, severity text, prefix text, origin_asn bigint,
    detail_key text, as_path text, monitored_prefix text, peers text[], first_seen float8,
    last_seen float8, resolved boolean, details text)
ON CONFLICT (key) DO UPDATE SET
    first_seen = LEAST(c.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(c.last_seen, EXCLUDED.last_seen),
    severity = CASE WHEN array_position(ARRAY['info','low','medium','high','critical'],
                                        EXCLUDED.severity)
                         > array_position(ARRAY['info','low','medium','high','critical'],
                                          c.severity)
                    THEN EXCLUDED.severity ELSE c.severity END,
    as_path = CASE WHEN EXCLUDED.last_seen >= c.last_seen THEN EXCLUDED.as_path
                   ELSE c.as_path END,
    details = CASE WHEN EXCLUDED.tenant_id IS NULL THEN
                       (CASE WHEN EXCLUDED.last_seen >= c.last_seen THEN EXCLUDED.details
                             ELSE c.details END)
                       || jsonb_build_object(
                           'observations',
                           coalesce((c.details->>'observations')::bigint, 1)
                           + coalesce((EXCLUDED.details->>'observations')::bigint, 1),
                           'origins',
                           (SELECT coalesce(jsonb_agg(o ORDER BY o), '[]'::jsonb) FROM (
                               SELECT DISTINCT o FROM jsonb_array_elements(
                                   coalesce(c.details->'origins', '[]'::jsonb)
                                   || coalesce(EXCLUDED.details->'origins', '[]'::jsonb)) AS e(o)
                               ORDER BY o LIMIT $SAMPLE_ORIGINS) AS merged))
                   WHEN EXCLUDED.last_seen >= c.last_seen THEN EXCLUDED.details
                   ELSE c.details END,
    peers = (SELECT coalesce(array_agg(p ORDER BY p), '{}') FROM (
                 SELECT DISTINCT p FROM unnest(c.peers || EXCLUDED.peers) AS p
                 ORDER BY p LIMIT 100) AS merged),
    state = CASE
        WHEN EXCLUDED.state = 'resolved' AND c.state = 'ongoing'
             AND EXCLUDED.last_seen >= c.last_seen THEN 'resolved'
        WHEN EXCLUDED.state = 'ongoing' AND c.state = 'resolved'
             AND EXCLUDED.last_seen > c.resolved_at THEN 'ongoing'
        ELSE c.state END,
    resolved_at = CASE
        WHEN EXCLUDED.state = 'resolved' AND c.state = 'ongoing'
             AND EXCLUDED.last_seen >= c.last_seen THEN EXCLUDED.last_seen
        ELSE c.resolved_at END,
    state_changed_at = CASE
        WHEN (EXCLUDED.state = 'resolved' AND c.state = 'ongoing'
              AND EXCLUDED.last_seen >= c.last_seen)
          OR (EXCLUDED.state = 'ongoing' AND c.state = 'resolved'
              AND EXCLUDED.last_seen > c.resolved_at) THEN now()
        ELSE c.state_changed_at END,
    updated_at = now()
""".replace("$SAMPLE_ORIGINS", str(SAMPLE_ORIGINS))


def _row(agg: Aggregate) -> dict[str, Any]:
    c = agg.conflict
    return {
        "key": agg.key or c.key,
        "tenant_id": c.tenant_id,
        "type": c.type.value,
        "severity": c.severity.value,
        "prefix": c.prefix,
        "origin_asn": c.origin_asn,
        "detail_key": c.detail_key,
        "as_path": c.as_path,
        "monitored_prefix": c.monitored_prefix,
        "peers": sorted(agg.peers)[: agg.peer_cap],
        "first_seen": agg.first_seen,
        "last_seen": agg.last_seen,
        "resolved": c.resolved,
        "details": orjson.dumps(agg.details()).decode(),
    }


async def upsert(conn: asyncpg.Connection, aggregates: Sequence[Aggregate]) -> None:
    """Store aggregated observations: statements of at most ``UPSERT_CHUNK`` rows, in key
    order (two writers locking the same rows always take them in the same order)."""
    if not aggregates:
        return
    # A resolution and an observation of the same key go in order: observation first.
    ordered = sorted(aggregates, key=lambda a: (a.key or a.conflict.key, a.conflict.resolved))
    opened = [a for a in ordered if not a.conflict.resolved]
    resolved = [a for a in ordered if a.conflict.resolved]
    for group in (opened, resolved):
        for start in range(0, len(group), UPSERT_CHUNK):
            chunk = group[start : start + UPSERT_CHUNK]
            payload = orjson.dumps([_row(a) for a in chunk]).decode()
            await conn.execute(UPSERT, payload)


SELECT = """
SELECT id, type, severity, state, tenant_id, prefix::text AS prefix, origin_asn, detail_key,
       as_path, monitored_prefix::text AS monitored_prefix, peers,
       cardinality(peers) AS peer_count, first_seen, last_seen, resolved_at, state_changed_at,
       details::text AS details, created_at
FROM conflicts
"""


def conflict_dict(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["details"] = orjson.loads(out["details"]) if out.get("details") else {}
    out["scope"] = "tenant" if out["tenant_id"] is not None else "global"
    return out


#: Which conflicts a tenant reads: its own, the global observations, or both.
Scope = Literal["tenant", "global", "all"]


def _scope(tenant_id: int, scope: Scope, args: list[Any]) -> str:
    """The tenant-scope clause; every read of conflicts goes through one of these."""
    if scope == "global":
        return "tenant_id IS NULL"
    args.append(tenant_id)
    if scope == "tenant":
        return f"tenant_id = ${len(args)}"
    return f"(tenant_id = ${len(args)} OR tenant_id IS NULL)"


async def page(
    conn: asyncpg.Connection,
    tenant_id: int,
    scope: Scope,
    clauses: list[str],
    args: list[Any],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the conflicts ``tenant_id`` may read in ``scope``, filtered by
    ``clauses`` (their ``$n`` placeholders number ``args``)."""
    args = list(args)
    clauses = [_scope(tenant_id, scope, args), *clauses]
    where = " AND ".join(clauses)
    n = len(args)
    rows = await conn.fetch(
        f"{SELECT.replace('FROM conflicts', ', count(*) OVER () AS total_rows FROM conflicts')}"
        f" WHERE {where} ORDER BY last_seen DESC, id DESC LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    if rows:
        total = int(rows[0]["total_rows"])
    elif offset == 0:
        total = 0
    else:
        total = int(await conn.fetchval(f"SELECT count(*) FROM conflicts WHERE {where}", *args))
    items = []
    for row in rows:
        item = conflict_dict(row)
        item.pop("total_rows", None)
        items.append(item)
    return items, total


async def get(
    conn: asyncpg.Connection, tenant_id: int, conflict_id: int, lock: bool = False
) -> dict[str, Any] | None:
    """The conflict if ``tenant_id`` may read it (its own, or a global observation)."""
    row = await conn.fetchrow(
        f"{SELECT} WHERE id = $1 AND (tenant_id = $2 OR tenant_id IS NULL)"
        + (" FOR UPDATE" if lock else ""),
        conflict_id,
        tenant_id,
    )
    return conflict_dict(row) if row is not None else None


async def set_state(
    conn: asyncpg.Connection, tenant_id: int, conflict_id: int, state: str
) -> dict[str, Any] | None:
    """Change the state of one of ``tenant_id``'s own conflicts (never a global one)."""
    row = await conn.fetchrow(
        "UPDATE conflicts SET state = $2, state_changed_at = now(), updated_at = now(), "
        "resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE resolved_at END "
        "WHERE id = $1 AND tenant_id = $3 RETURNING id",
        conflict_id,
        state,
        tenant_id,
    )
    return await get(conn, tenant_id, conflict_id) if row is not None else None


async def events_after(
    conn: asyncpg.Connection,
    tenant_id: int,
    after_id: int,
    limit: int = 500,
    up_to: int | None = None,
) -> list[dict[str, Any]]:
    """A page of a tenant's events with ids in ``(after_id, up_to]``, in id order, each
    with its conflict as it is now (``{"id", "event", "conflict"}``). Page through by
    passing the last id as ``after_id`` until fewer than ``limit`` come back."""
    rows = await conn.fetch(
        "SELECT e.id AS event_id, e.event, c.* FROM conflict_events e "
        f"CROSS JOIN LATERAL ({SELECT} WHERE id = e.conflict_id) c "
        "WHERE e.tenant_id = $1 AND e.id > $2 AND ($3::bigint IS NULL OR e.id <= $3) "
        "ORDER BY e.id LIMIT $4",
        tenant_id,
        after_id,
        up_to,
        limit,
    )
    out = []
    for row in rows:
        conflict = dict(row)
        event_id, event = conflict.pop("event_id"), conflict.pop("event")
        conflict["details"] = orjson.loads(conflict["details"]) if conflict["details"] else {}
        conflict["scope"] = "tenant" if conflict["tenant_id"] is not None else "global"
        out.append({"id": event_id, "event": event, "conflict": conflict})
    return out


async def as_expected(
    conn: asyncpg.Connection, tenant_ids: dict[int, int] | None = None
) -> list[Expected]:
    """The stored conflicts in scenario form (a resolved one also as its resolution),
    tenant ids mapped back through ``tenant_ids`` (scenario id -> database id)."""
    back = {v: k for k, v in (tenant_ids or {}).items()}
    rows = await conn.fetch(
        "SELECT type, tenant_id, prefix::text AS prefix, origin_asn, detail_key, severity, "
        "state FROM conflicts"
    )
    out = []
    for r in rows:
        tenant = back.get(r["tenant_id"], r["tenant_id"]) if r["tenant_id"] else None
        entry = Expected(
            r["type"], tenant, r["prefix"], r["origin_asn"], r["detail_key"], r["severity"]
        )
        out.append(entry)
        if r["state"] == "resolved":
            out.append(
                Expected(
                    entry.type,
                    tenant,
                    entry.prefix,
                    entry.origin_asn,
                    entry.detail_key,
                    entry.severity,
                    resolved=True,
                )
            )
    return out
