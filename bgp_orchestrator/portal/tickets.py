"""Support tickets of a tenant: open, comment, change status; every change is kept.

Every function takes the tenant id and reads or writes only that tenant's rows:
a ticket of another tenant is "not found".
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg

from bgp_orchestrator.errors import InvalidInput, NotFound

Status = Literal["open", "waiting", "closed"]
STATUSES: tuple[Status, ...] = ("open", "waiting", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
MAX_SUBJECT = 200
MAX_BODY = 20_000


def _check_text(field: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput("field-required", f"{field} must not be empty", field, value)
    if len(value) > limit:
        raise InvalidInput(
            "field-too-long", f"{field} is longer than {limit} characters", field, len(value)
        )
    return value


async def open_ticket(
    conn: asyncpg.Connection, tenant_id: int, subject: str, body: str, priority: str, author: str
) -> int:
    subject = _check_text("subject", subject, MAX_SUBJECT)
    body = _check_text("body", body, MAX_BODY)
    if priority not in PRIORITIES:
        raise InvalidInput(
            "invalid-priority",
            f"priority must be one of {', '.join(PRIORITIES)}",
            "priority",
            priority,
        )
    async with conn.transaction():
        ticket_id: int = await conn.fetchval(
            "INSERT INTO support_tickets (tenant_id, subject, priority, opened_by) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            tenant_id,
            subject,
            priority,
            author,
        )
        await conn.execute(
            "INSERT INTO ticket_comments (ticket_id, author, body) VALUES ($1, $2, $3)",
            ticket_id,
            author,
            body,
        )
        await conn.execute(
            "INSERT INTO ticket_status_changes (ticket_id, from_status, to_status, changed_by) "
            "VALUES ($1, NULL, 'open', $2)",
            ticket_id,
            author,
        )
    return ticket_id


async def tickets(
    conn: asyncpg.Connection, tenant_id: int, status: str | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT t.*, (SELECT count(*) FROM ticket_comments c WHERE c.ticket_id = t.id) "
        "AS comments FROM support_tickets t "
        "WHERE t.tenant_id = $1 AND ($2::text IS NULL OR t.status = $2) "
        "ORDER BY t.status = 'closed', t.updated_at DESC LIMIT 500",
        tenant_id,
        status,
    )
    return [dict(r) for r in rows]


async def ticket(conn: asyncpg.Connection, tenant_id: int, ticket_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT * FROM support_tickets WHERE tenant_id = $1 AND id = $2", tenant_id, ticket_id
    )
    if row is None:
        raise NotFound("ticket-not-found", f"no ticket #{ticket_id}", "id", ticket_id)
    out = dict(row)
    out["comments"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT * FROM ticket_comments WHERE ticket_id = $1 ORDER BY id", ticket_id
        )
    ]
    out["history"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT * FROM ticket_status_changes WHERE ticket_id = $1 ORDER BY id", ticket_id
        )
    ]
    return out


async def comment(
    conn: asyncpg.Connection, tenant_id: int, ticket_id: int, body: str, author: str
) -> None:
    body = _check_text("body", body, MAX_BODY)
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM support_tickets WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant_id,
            ticket_id,
        )
        if status is None:
            raise NotFound("ticket-not-found", f"no ticket #{ticket_id}", "id", ticket_id)
        await conn.execute(
            "INSERT INTO ticket_comments (ticket_id, author, body) VALUES ($1, $2, $3)",
            ticket_id,
            author,
            body,
        )
        await conn.execute("UPDATE support_tickets SET updated_at = now() WHERE id = $1", ticket_id)


async def set_status(
    conn: asyncpg.Connection, tenant_id: int, ticket_id: int, status: str, author: str
) -> bool:
    """Change the status (recorded with who and when); False when it was already so."""
    if status not in STATUSES:
        raise InvalidInput(
            "invalid-status", f"status must be one of {', '.join(STATUSES)}", "status", status
        )
    async with conn.transaction():
        before = await conn.fetchval(
            "SELECT status FROM support_tickets WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
            tenant_id,
            ticket_id,
        )
        if before is None:
            raise NotFound("ticket-not-found", f"no ticket #{ticket_id}", "id", ticket_id)
        if before == status:
            return False
        await conn.execute(
            "UPDATE support_tickets SET status = $2, updated_at = now() WHERE id = $1",
            ticket_id,
            status,
        )
        await conn.execute(
            "INSERT INTO ticket_status_changes (ticket_id, from_status, to_status, changed_by) "
            "VALUES ($1, $2, $3, $4)",
            ticket_id,
            before,
            status,
            author,
        )
    return True
