"""FastAPI dependencies: settings, database, the caller, tenant and paging (injected).

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool,
which cost a quarter of the request time in profiles of the read path.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from bgp_orchestrator.api.ratelimit import enforce_rate_limit
from bgp_orchestrator.auth import apikeys
from bgp_orchestrator.auth.jwks import JwksCache
from bgp_orchestrator.auth.principal import Principal, Role
from bgp_orchestrator.auth.tokens import TokenValidator
from bgp_orchestrator.errors import Forbidden, Unauthorized
from bgp_orchestrator.local import oidc
from bgp_orchestrator.peering.service import PeeringService, TenantService
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database

TENANT_HEADER = "X-Tenant"
ROLE_HEADER = "X-Role"
API_KEY_HEADER = "X-API-Key"
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


def _slug(value: str, header: str) -> str:
    slug = value.strip()
    if not _SLUG.match(slug):
        raise Unauthorized(
            "invalid-tenant",
            f"{header} must be a tenant slug (lower-case letters, digits, '-')",
            header,
        )
    return slug


async def tenant_id_of(db: Database, cache: TenantCache, slug: str) -> int | None:
    cached = cache.get(slug)
    if cached is not None:
        return cached
    tenant = await TenantService(db).by_slug(slug)
    if tenant is None:
        return None
    cache.put(slug, tenant["id"])
    return int(tenant["id"])


def token_validator(request: Request, settings: Settings) -> TokenValidator:
    """The app's validator (its key cache lives as long as the app)."""
    validator: TokenValidator | None = getattr(request.app.state, "token_validator", None)
    if validator is None:
        issuer = oidc.issuer(settings)
        if issuer is None:
            raise Unauthorized(
                "tokens-not-configured",
                "this deployment has no OIDC issuer (BGPO_OIDC_ISSUER); use an API key",
                "Authorization",
            )
        validator = TokenValidator(
            issuer,
            settings.oidc_audience,
            settings.oidc_algorithms,
            settings.oidc_roles_claim,
            settings.oidc_tenant_claim,
            JwksCache(issuer, ttl_s=settings.oidc_jwks_ttl_s),
        )
        request.app.state.token_validator = validator
    return validator


def api_key_secret(request: Request, settings: Settings) -> bytes:
    secret: bytes | None = getattr(request.app.state, "api_key_secret", None)
    if secret is None:
        secret = apikeys.secret_of(settings)
        request.app.state.api_key_secret = secret
    return secret


async def _api_key_principal(
    request: Request, settings: Settings, db: Database, key: str
) -> Principal:
    secret = api_key_secret(request, settings)
    async with db.connection() as conn:
        principal = await apikeys.authenticate(conn, secret, key)
    if principal is None:
        raise Unauthorized(
            "invalid-api-key", "the API key is unknown, revoked or expired", "Authorization"
        )
    return principal


async def _token_principal(
    request: Request, settings: Settings, db: Database, cache: TenantCache, token: str
) -> Principal:
    identity = await token_validator(request, settings).validate(token)
    tenant_id = None
    if identity.tenant_slug is not None:
        tenant_id = await tenant_id_of(db, cache, identity.tenant_slug)
        if tenant_id is None:
            raise Forbidden(
                "unknown-tenant",
                f"the token's tenant {identity.tenant_slug!r} is not provisioned here",
            )
    return Principal(identity.subject, tenant_id, identity.roles, "token")


async def _development_principal(
    settings: Settings,
    db: Database,
    cache: TenantCache,
    x_tenant: str | None,
    x_role: str | None,
) -> Principal:
    if not settings.development:
        raise Unauthorized(
            "authentication-required",
            f"production mode does not accept the {TENANT_HEADER} header; send a bearer "
            "token or an API key",
            TENANT_HEADER,
        )
    if not settings.api_on_loopback:
        raise Unauthorized(
            "development-header-off-loopback",
            f"the {TENANT_HEADER} header is accepted only while the API listens on loopback "
            f"(BGPO_API_HOST={settings.api_host}); send a bearer token or an API key",
            TENANT_HEADER,
        )
    role = Role.ADMIN
    if x_role is not None:
        try:
            role = Role(x_role.strip())
        except ValueError as exc:
            raise Unauthorized(
                "invalid-role",
                f"{ROLE_HEADER} must be one of {', '.join(r.value for r in Role)}",
                ROLE_HEADER,
                x_role,
            ) from exc
    tenant_id = None
    if x_tenant is not None:
        slug = _slug(x_tenant, TENANT_HEADER)
        tenant_id = await tenant_id_of(db, cache, slug)
        if tenant_id is None:
            raise Unauthorized(
                "unknown-tenant",
                f"no tenant {slug!r}; create it with POST /api/v1/tenants",
                TENANT_HEADER,
                slug,
            )
    elif role is not Role.PLATFORM_ADMIN:
        raise Unauthorized(
            "tenant-required",
            f"send the {TENANT_HEADER} header with your tenant's slug",
            TENANT_HEADER,
        )
    roles = {role}
    if role is Role.PLATFORM_ADMIN and tenant_id is not None:
        roles.add(Role.ADMIN)
    return Principal(
        f"development:{x_tenant or 'platform'}", tenant_id, frozenset(roles), "development"
    )


async def current_principal(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    cache: Annotated[TenantCache, Depends(get_tenant_cache)],
    authorization: Annotated[
        str | None,
        Header(description="Bearer <OIDC access token> or Bearer bgpo_<API key>"),
    ] = None,
    x_api_key: Annotated[
        str | None, Header(alias=API_KEY_HEADER, description="An API key (bgpo_...)")
    ] = None,
    x_tenant: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            description="Development mode on loopback only: act as this tenant's admin.",
        ),
    ] = None,
    x_role: Annotated[
        str | None,
        Header(
            alias=ROLE_HEADER,
            description="Development mode on loopback only, with X-Tenant: act with this "
            "role (viewer, operator, admin; platform-admin needs no X-Tenant).",
        ),
    ] = None,
) -> Principal | None:
    """Who is calling (None: no credentials at all); also kept in ``request.state.principal``."""
    principal: Principal | None = None
    if x_tenant is not None and not settings.development:
        # Production refuses the development header outright, even next to a credential.
        await _development_principal(settings, db, cache, x_tenant, x_role)
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized(
                "invalid-authorization",
                "the Authorization header must read 'Bearer <token or API key>'",
                "Authorization",
            )
        if apikeys.looks_like_key(value):
            principal = await _api_key_principal(request, settings, db, value)
        else:
            principal = await _token_principal(request, settings, db, cache, value)
    elif x_api_key is not None:
        principal = await _api_key_principal(request, settings, db, x_api_key.strip())
    elif x_tenant is not None or x_role is not None:
        principal = await _development_principal(settings, db, cache, x_tenant, x_role)
    request.state.principal = principal
    # Per credential and per tenant, shared by the replicas (429 with Retry-After).
    await enforce_rate_limit(request)
    return principal


PrincipalDep = Annotated[Principal | None, Depends(current_principal)]


async def current_caller(principal: PrincipalDep) -> Principal:
    """The authenticated caller (401 without credentials)."""
    if principal is None:
        raise Unauthorized(
            "authentication-required",
            "send a bearer token or an API key (development: the X-Tenant header)",
            "Authorization",
        )
    return principal


CallerDep = Annotated[Principal, Depends(current_caller)]


async def current_tenant_id(principal: PrincipalDep) -> int:
    """The caller's tenant (routes also declare a tenant access rule, see ``access``)."""
    if principal is None:
        raise Unauthorized(
            "authentication-required",
            "send a bearer token or an API key (development: the X-Tenant header)",
            "Authorization",
        )
    if principal.tenant_id is None:
        raise Forbidden(
            "tenant-required",
            "this route acts on one tenant's data and the caller belongs to no tenant",
        )
    return principal.tenant_id


TenantId = Annotated[int, Depends(current_tenant_id)]


async def session_scope(principal: PrincipalDep) -> int | None:
    """Whose sessions the caller reads on a reader route: its tenant's, or every
    tenant's (None) for the platform administrator."""
    caller = await current_caller(principal)
    if caller.platform_admin:
        return None
    return await current_tenant_id(principal)


SessionScope = Annotated[int | None, Depends(session_scope)]


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
