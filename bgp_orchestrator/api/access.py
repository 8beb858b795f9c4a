"""The one access rule each route declares: public, viewer, operator, admin of the
tenant, platform admin, or reader (a tenant's viewer, or the platform admin).

A route declares its rule with ``dependencies=[allow(Access.X)]``; the dependency
authenticates the caller (``deps.current_principal``) and refuses with 401 (no or
invalid credentials) or 403 (a role too small, or no tenant for a tenant route). A test
walks ``app.routes`` and fails for a route that declares none, or more than one.

Tenant rules need a caller *of a tenant*: a platform administrator acting on no tenant
manages the platform (tenants, models, jobs) and does not read tenants' data. The one
exception is the reader rule of the flap predictions and features: the platform
administrator checks the model it activates on any session, a tenant's caller reads
its own sessions only (the routes scope it, see ``deps.session_scope``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from fastapi import Depends

from bgp_orchestrator.api.deps import PrincipalDep
from bgp_orchestrator.auth.principal import Principal, Role
from bgp_orchestrator.errors import Forbidden, Unauthorized


class Access(StrEnum):
    PUBLIC = "public"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    PLATFORM_ADMIN = "platform-admin"
    #: A viewer of a tenant (its own objects only), or the platform administrator (any).
    READER = "viewer-or-platform-admin"


#: Routes FastAPI itself adds (the documentation); they are public.
DOCUMENTATION_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})

Checker = Callable[..., Awaitable[Principal | None]]


def authenticated(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized(
            "authentication-required",
            "send a bearer token (Authorization: Bearer ...) or an API key "
            "(Authorization: Bearer bgpo_... or X-API-Key)",
            "Authorization",
        )
    return principal


def check(access: Access, principal: Principal | None) -> Principal | None:
    """Apply one rule to a caller (None: no credentials); raises 401 / 403."""
    if access is Access.PUBLIC:
        return principal
    caller = authenticated(principal)
    if access is Access.PLATFORM_ADMIN:
        if not caller.platform_admin:
            raise Forbidden(
                "platform-admin-required",
                "this action changes the whole platform: it needs the platform-admin role",
            )
        return caller
    if access is Access.READER and caller.platform_admin:
        return caller
    if caller.tenant_id is None:
        raise Forbidden(
            "tenant-required",
            "this route acts on one tenant's data and the caller belongs to no tenant",
        )
    role = Role.VIEWER if access is Access.READER else Role(access.value)
    if not caller.at_least(role):
        raise Forbidden("role-required", f"this action needs the {role} role (or a higher one)")
    return caller


def _checker(access: Access) -> Checker:
    if access is Access.PUBLIC:

        async def public() -> None:
            return None

        fn: Any = public
    else:

        async def rule(principal: PrincipalDep) -> Principal | None:
            return check(access, principal)

        fn = rule
    fn.__name__ = f"access_{access.name.lower()}"
    fn.access = access
    return fn  # type: ignore[no-any-return]


_CHECKERS = {access: _checker(access) for access in Access}


def allow(access: Access) -> Any:
    """The dependency that declares (and enforces) a route's access rule."""
    return Depends(_CHECKERS[access])


def rule_of(call: object) -> Access | None:
    """The rule a dependency callable declares, if it is one of ours."""
    access = getattr(call, "access", None)
    return access if isinstance(access, Access) else None
