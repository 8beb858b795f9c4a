"""Tenant administration: the platform administrator's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import DatabaseDep, PagingDep
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.peering.schemas import Page, Tenant, TenantCreate
from bgp_orchestrator.peering.service import TenantService

router = APIRouter(
    prefix="/api/v1/tenants",
    tags=["tenants"],
    responses=documented(401, 422, 503),
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=documented(409),
    response_model=Tenant,
    dependencies=[allow(Access.PLATFORM_ADMIN)],
)
async def create_tenant(body: TenantCreate, db: DatabaseDep) -> dict[str, Any]:
    return await TenantService(db).create(body.slug, body.name)


@router.get(
    "",
    response_model=Page[Tenant],
    dependencies=[allow(Access.PLATFORM_ADMIN)],
)
async def list_tenants(db: DatabaseDep, page: PagingDep) -> dict[str, Any]:
    items, total = await TenantService(db).list(page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.delete(
    "/{slug}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404),
    dependencies=[allow(Access.PLATFORM_ADMIN)],
)
async def delete_tenant(
    request: Request,
    db: DatabaseDep,
    slug: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")],
) -> None:
    await TenantService(db).delete(slug)
    request.app.state.tenant_cache.forget(slug)
