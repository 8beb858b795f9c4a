"""API keys of the tenant: create (the key is shown once), list, read, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.apikey_schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from bgp_orchestrator.api.deps import (
    CallerDep,
    DatabaseDep,
    PagingDep,
    SettingsDep,
    TenantId,
    api_key_secret,
)
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId
from bgp_orchestrator.auth import apikeys
from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.errors import Forbidden
from bgp_orchestrator.peering.schemas import Page

router = APIRouter(
    prefix="/api/v1/api-keys", tags=["api keys"], responses=documented(401, 403, 422, 503)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    dependencies=[allow(Access.ADMIN)],
)
async def create_api_key(
    body: ApiKeyCreate,
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    tenant_id: TenantId,
    caller: CallerDep,
) -> dict[str, Any]:
    """A new key for machines of your tenant. The answer carries the key itself: store it
    now, it is kept only as a keyed hash and cannot be shown again."""
    role = Role(body.role)
    if not caller.at_least(role):
        raise Forbidden("role-required", f"a key cannot have more than your role ({role})")
    async with db.connection() as conn:
        created = await apikeys.create(
            conn,
            api_key_secret(request, settings),
            tenant_id,
            body.name,
            role,
            created_by=caller.subject,
            expires_at=body.expires_at,
        )
    return {**created.row, "key": created.key}


@router.get("", response_model=Page[ApiKeyOut], dependencies=[allow(Access.ADMIN)])
async def list_api_keys(db: DatabaseDep, tenant_id: TenantId, page: PagingDep) -> dict[str, Any]:
    async with db.connection() as conn:
        items, total = await apikeys.list_keys(conn, tenant_id, page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get(
    "/{key_id}",
    response_model=ApiKeyOut,
    responses=documented(404),
    dependencies=[allow(Access.ADMIN)],
)
async def get_api_key(
    db: DatabaseDep, tenant_id: TenantId, key_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    async with db.connection() as conn:
        return await apikeys.get(conn, tenant_id, key_id)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404),
    dependencies=[allow(Access.ADMIN)],
)
async def revoke_api_key(
    db: DatabaseDep, tenant_id: TenantId, key_id: Annotated[int, ObjectId]
) -> None:
    """Revoke the key: it is refused from the next request on (the row stays, for audit)."""
    async with db.connection() as conn:
        await apikeys.revoke(conn, tenant_id, key_id)
