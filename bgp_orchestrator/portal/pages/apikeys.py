"""API keys of the tenant: create (the key is shown on the answer page, once), revoke.

The keys are the API's own (:mod:`bgp_orchestrator.auth.apikeys`): a key made
here works with ``Authorization: Bearer bgpo_...`` or ``X-API-Key`` at once.
The plain key is rendered into the answer of the POST and kept nowhere (not in
the session either); reloading that page does not show it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bgp_orchestrator.auth import apikeys
from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.portal.auth import PortalUser
from bgp_orchestrator.portal.web import (
    User,
    back,
    db_of,
    form_of,
    need,
    render,
    settings_of,
    text,
)

router = APIRouter(prefix="/api-keys")
ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
EXPIRY_DAYS = {"30": 30, "90": 90, "365": 365, "never": None}


async def _page(request: Request, user: PortalUser, created: dict[str, str] | None) -> Response:
    async with db_of(request).connection() as conn:
        keys, total = await apikeys.list_keys(conn, user.tenant_id, 500, 0)
    now = datetime.now(UTC)
    return render(
        request, "apikeys.html", user, nav="apikeys", keys=keys[::-1], total=total,
        created=created, roles=[r.value for r in ROLES if user.may(r)], now=now,
        expiry=list(EXPIRY_DAYS),
    )  # fmt: skip


@router.get("", name="apikeys")
async def key_list(request: Request, user: User) -> Response:
    need(user, Role.ADMIN)
    return await _page(request, user, None)


@router.post("", name="create_apikey")
async def create_key(request: Request, user: User) -> Response:
    form = await form_of(request)
    need(user, Role.ADMIN)
    name = text(form, "name").strip()
    try:
        if not name or len(name) > 100:
            raise InvalidInput("invalid-name", "name must be 1-100 characters", "name", name)
        try:
            role = Role(text(form, "role"))
        except ValueError:
            raise InvalidInput("invalid-role", "pick a role", "role", text(form, "role")) from None
        if not user.may(role) or role is Role.PLATFORM_ADMIN:
            raise InvalidInput("role-too-high", "a key cannot have more than your role", "role")
        if text(form, "expires") not in EXPIRY_DAYS:
            raise InvalidInput("invalid-expiry", "pick an expiry", "expires")
        days = EXPIRY_DAYS[text(form, "expires")]
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        secret = apikeys.secret_of(settings_of(request))
        async with db_of(request).connection() as conn:
            made = await apikeys.create(
                conn, secret, user.tenant_id, name, role, user.subject, expires
            )
    except InvalidInput as exc:
        return back(request, "apikeys", "error", exc.message)
    response = await _page(request, user, {"name": name, "key": made.key})
    response.headers["Cache-Control"] = "no-store"  # the key must not stay in a cache
    return response


@router.post("/{key_id}/revoke", name="revoke_apikey")
async def revoke_key(request: Request, user: User, key_id: int) -> Response:
    await form_of(request)
    need(user, Role.ADMIN)
    async with db_of(request).connection() as conn:
        row = await apikeys.revoke(conn, user.tenant_id, key_id)
    return back(request, "apikeys", "ok", f"API key {row['name']!r} revoked.")
