"""Conflicts: list and filter, read, acknowledge / resolve / ignore, and a live stream (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import StreamingResponse

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.broadcast import ConflictBroadcaster
from bgp_orchestrator.api.conflict_schemas import (
    ConflictOut,
    ConflictState,
    PrefixMatch,
    Scope,
    StateChange,
)
from bgp_orchestrator.api.deps import DatabaseDep, PagingDep, TenantId
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId
from bgp_orchestrator.detection.conflict import ConflictType, Severity
from bgp_orchestrator.errors import ConfigConflict, NotFound
from bgp_orchestrator.peering.fields import ASN, NetworkOrAddress
from bgp_orchestrator.peering.schemas import Page
from bgp_orchestrator.storage import conflicts as store

router = APIRouter(
    prefix="/api/v1/conflicts", tags=["conflicts"], responses=documented(401, 422, 503)
)

SEVERITIES = [s.value for s in Severity]
# Which states each action may leave from.
TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "acknowledge": ("acknowledged", frozenset({"ongoing", "resolved"})),
    "resolve": ("resolved", frozenset({"ongoing", "acknowledged"})),
    "ignore": ("ignored", frozenset({"ongoing", "resolved", "acknowledged"})),
}


@router.get(
    "",
    response_model=Page[ConflictOut],
    dependencies=[allow(Access.VIEWER)],
)
async def list_conflicts(
    db: DatabaseDep,
    tenant_id: TenantId,
    page: PagingDep,
    type: Annotated[list[ConflictType] | None, Query(description="One or more types")] = None,
    state: Annotated[list[ConflictState] | None, Query()] = None,
    min_severity: Annotated[Severity | None, Query()] = None,
    prefix: Annotated[NetworkOrAddress | None, Query()] = None,
    prefix_match: Annotated[
        PrefixMatch,
        Query(
            description="exact; covered: the prefix or its more-specifics; covering: the "
            "prefix or less-specifics"
        ),
    ] = "covered",
    asn: Annotated[ASN | None, Query(description="Origin ASN")] = None,
    since: Annotated[datetime | None, Query(description="Last seen at or after")] = None,
    until: Annotated[datetime | None, Query(description="Last seen before")] = None,
    scope: Annotated[
        Scope, Query(description="tenant: yours; global: observations of unowned prefixes")
    ] = "tenant",
) -> dict[str, Any]:
    clauses: list[str] = []
    args: list[Any] = []
    if type:
        args.append([t.value for t in type])
        clauses.append(f"type = ANY(${len(args)}::text[])")
    if state:
        args.append(list(state))
        clauses.append(f"state = ANY(${len(args)}::text[])")
    if min_severity is not None:
        args.append(SEVERITIES[SEVERITIES.index(min_severity.value) :])
        clauses.append(f"severity = ANY(${len(args)}::text[])")
    if prefix is not None:
        args.append(prefix)
        operator = {"exact": "=", "covered": "<<=", "covering": ">>="}[prefix_match]
        clauses.append(
            f"prefix {operator} ${len(args)}::cidr"
            if "/" in prefix
            else f"prefix >>= ${len(args)}::inet"
        )
    if asn is not None:
        args.append(asn)
        clauses.append(f"origin_asn = ${len(args)}")
    if since is not None:
        args.append(since)
        clauses.append(f"last_seen >= ${len(args)}")
    if until is not None:
        args.append(until)
        clauses.append(f"last_seen < ${len(args)}")
    async with db.connection() as conn:
        items, total = await store.page(
            conn, tenant_id, scope, clauses, args, page.limit, page.offset
        )
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


async def _visible_conflict(db: DatabaseDep, tenant_id: int, conflict_id: int) -> dict[str, Any]:
    async with db.connection() as conn:
        found = await store.get(conn, tenant_id, conflict_id)
    if found is None:
        raise NotFound(
            "conflict-not-found", f"no conflict with id {conflict_id}", "id", conflict_id
        )
    return found


@router.get(
    "/stream",
    summary="Live stream of your conflicts (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "events: opened, reopened, resolved, acknowledged, ignored "
            "(id: the event id, data: the conflict), in id order, each once; overflow: "
            "the client fell too far behind and should reconnect with Last-Event-ID",
        }
    },
    dependencies=[allow(Access.VIEWER)],
)
async def stream(
    request: Request,
    tenant_id: TenantId,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=9_223_372_036_854_775_807,
            description="Resume after this event id: every later event, in id order",
        ),
    ] = None,
) -> StreamingResponse:
    broadcaster: ConflictBroadcaster = request.app.state.broadcaster
    # The cursor starts now: a replay reads the outbox page by page, then goes on live.
    subscriber = broadcaster.subscribe(tenant_id, after=last_event_id)

    def render(item: dict[str, Any]) -> str:
        body = orjson.dumps(ConflictOut.model_validate(item["conflict"]).model_dump(mode="json"))
        return f"id: {item['id']}\nevent: {item['event']}\ndata: {body.decode()}\n\n"

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            while not await request.is_disconnected():
                if subscriber.overflowed:
                    yield 'event: overflow\ndata: {"reconnect": true}\n\n'
                    return
                try:
                    item = await asyncio.wait_for(subscriber.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield render(item)
        finally:
            broadcaster.unsubscribe(subscriber)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{conflict_id}",
    response_model=ConflictOut,
    responses=documented(404),
    dependencies=[allow(Access.VIEWER)],
)
async def get_conflict(
    db: DatabaseDep, tenant_id: TenantId, conflict_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    return await _visible_conflict(db, tenant_id, conflict_id)


async def _transition(
    db: DatabaseDep, tenant_id: int, conflict_id: int, action: str
) -> dict[str, Any]:
    target, allowed = TRANSITIONS[action]
    async with db.transaction() as conn:
        found = await store.get(conn, tenant_id, conflict_id, lock=True)
        if found is None:
            raise NotFound(
                "conflict-not-found", f"no conflict with id {conflict_id}", "id", conflict_id
            )
        if found["tenant_id"] is None:
            raise ConfigConflict(
                "global-conflict-read-only",
                "this is a global observation shared by all tenants; it cannot be "
                f"{target} by one of them",
            )
        if found["state"] == target:
            return found
        if found["state"] not in allowed:
            raise ConfigConflict(
                "invalid-state-change",
                f"a conflict in state {found['state']!r} cannot be {target} "
                f"(allowed from: {', '.join(sorted(allowed))})",
                "state",
                found["state"],
            )
        updated = await store.set_state(conn, tenant_id, conflict_id, target)
    assert updated is not None
    return updated


def _action(name: str) -> None:
    async def handler(
        db: DatabaseDep,
        tenant_id: TenantId,
        conflict_id: Annotated[int, ObjectId],
        body: Annotated[StateChange | None, Body()] = None,
    ) -> dict[str, Any]:
        return await _transition(db, tenant_id, conflict_id, name)

    handler.__name__ = f"{name}_conflict"
    router.post(
        f"/{{conflict_id}}/{name}",
        response_model=ConflictOut,
        responses=documented(404, 409),
        summary=f"{name.capitalize()} a conflict",
        dependencies=[allow(Access.OPERATOR)],
    )(handler)


for _name in TRANSITIONS:
    _action(_name)

with contextlib.suppress(NameError):
    del _name
