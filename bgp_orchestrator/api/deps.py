"""FastAPI dependencies: settings, database, tenant and paging (injected, so tests swap them).

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool,
which cost a quarter of the request time in profiles of the read path.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from bgp_orchestrator.errors import Unauthorized
from bgp_orchestrator.peering.service import PeeringService, TenantService
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database

TENANT_HEADER = "X-Tenant"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]


class TenantCache:
    """slug -> tenant id, kept for a few seconds to spare a query per request."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[int, float]] = {}

    def get(self, slug: str) -> int | None:
        entry = self._entries.get(slug)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, slug: str, tenant_id: int) -> None:
        self._entries[slug] = (tenant_id, time.monotonic() + self.ttl_s)

    def forget(self, slug: str) -> None:
        self._entries.pop(slug, None)


async def get_tenant_cache(request: Request) -> TenantCache:
    cache: TenantCache = request.app.state.tenant_cache
    return cache


async def require_development(settings: SettingsDep) -> None:
    if not settings.development:
        raise Unauthorized(
            "authentication-required",
            "this endpoint needs an authenticated administrator; "
            "only development mode accepts unauthenticated administration",
        )


async def current_tenant_id(
    settings: SettingsDep,
    db: DatabaseDep,
    cache: Annotated[TenantCache, Depends(get_tenant_cache)],
    x_tenant: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            description="Tenant slug. Accepted in development mode only, until SSO arrives.",
        ),
    ] = None,
) -> int:
    if not settings.development:
        raise Unauthorized(
            "authentication-required",
            f"production mode does not accept the {TENANT_HEADER} header; authenticate through SSO",
        )
    if not x_tenant:
        raise Unauthorized(
            "tenant-required",
            f"send the {TENANT_HEADER} header with your tenant's slug",
            TENANT_HEADER,
        )
    slug = x_tenant.strip()
    if not _SLUG.match(slug):
        raise Unauthorized(
            "invalid-tenant",
            f"{TENANT_HEADER} must be a tenant slug (lower-case letters, digits, '-')",
            TENANT_HEADER,
        )
    cached = cache.get(slug)
    if cached is not None:
        return cached
    tenant = await TenantService(db).by_slug(slug)
    if tenant is None:
        raise Unauthorized(
            "unknown-tenant",
            f"no tenant {slug!r}; create it with POST /api/v1/tenants",
            TENANT_HEADER,
            slug,
        )
    cache.put(slug, tenant["id"])
    return int(tenant["id"])


TenantId = Annotated[int, Depends(current_tenant_id)]


async def peering_service(db: DatabaseDep, tenant_id: TenantId) -> PeeringService:
    return PeeringService(db, tenant_id)


PeeringDep = Annotated[PeeringService, Depends(peering_service)]


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


async def paging(
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Objects to skip")] = 0,
) -> Paging:
    return Paging(limit, offset)


PagingDep = Annotated[Paging, Depends(paging)]
