"""Sign in (authorization code + PKCE), the callback, RP-initiated sign-out."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.peering import repository as repo
from bgp_orchestrator.portal.auth import USER_KEY, claim, roles_of
from bgp_orchestrator.portal.sessions import rotate
from bgp_orchestrator.portal.web import db_of, error_page, form_of, render, settings_of

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/login", name="login")
async def login(request: Request) -> Response:
    redirect_uri = str(request.url_for("callback"))
    try:
        response: Response = await request.app.state.oidc.authorize_redirect(request, redirect_uri)
    except httpx.HTTPError as exc:
        return error_page(
            request,
            503,
            "Sign-in unavailable",
            f"The identity provider at {request.app.state.issuer} does not answer ({exc}).",
        )
    return response


@router.get("/auth/callback", name="callback")
async def callback(request: Request) -> Response:
    settings = settings_of(request)
    try:
        token = await request.app.state.oidc.authorize_access_token(request)
    except OAuthError as exc:
        return error_page(
            request, 400, "Sign-in failed", f"The sign-in was refused: {exc.description}"
        )
    claims = dict(token.get("userinfo") or {})
    slug = claim(claims, settings.oidc_tenant_claim)
    if not isinstance(slug, str) or not slug:
        return error_page(
            request,
            403,
            "No tenant",
            f"Your account has no '{settings.oidc_tenant_claim}' claim: ask your "
            "administrator to assign you to a tenant.",
        )
    async with db_of(request).connection() as conn:
        tenant = await repo.tenant_by_slug(conn, slug)
    if tenant is None:
        return error_page(
            request, 403, "Unknown tenant", f"Tenant {slug!r} does not exist on this system."
        )
    roles = roles_of(claims, settings.oidc_roles_claim) or [Role.VIEWER.value]
    next_path = request.session.get("next")
    request.session.clear()
    rotate(request.session)  # a new session id once signed in (no fixation)
    request.session[USER_KEY] = {
        "subject": str(claims.get("sub")),
        "name": str(claims.get("name") or claims.get("preferred_username") or claims["sub"]),
        "email": str(claims.get("email") or ""),
        "tenant_id": int(tenant["id"]),
        "tenant_slug": slug,
        "tenant_name": str(tenant["name"]),
        "roles": roles,
    }
    request.session["id_token"] = token.get("id_token")
    await request.app.state.sessions.purge_expired()  # one cheap delete per login
    root = request.scope.get("root_path", "")
    target = None
    if isinstance(next_path, str) and next_path.startswith(root + "/"):
        target = None if next_path.startswith("//") else next_path
    return RedirectResponse(target or str(request.url_for("dashboard")), status_code=303)


@router.post("/logout", name="logout")
async def logout(request: Request) -> Response:
    await form_of(request)
    id_token = request.session.get("id_token")
    request.session.clear()
    done = str(request.url_for("signed_out"))
    try:
        metadata = await request.app.state.oidc.load_server_metadata()
    except httpx.HTTPError:
        return RedirectResponse(done, status_code=303)  # signed out here at least
    end = metadata.get("end_session_endpoint")
    if not end:
        return RedirectResponse(done, status_code=303)
    query = {"post_logout_redirect_uri": done, "client_id": settings_of(request).portal_client_id}
    if id_token:
        query["id_token_hint"] = id_token
    return RedirectResponse(f"{end}?{urlencode(query)}", status_code=303)


@router.get("/signed-out", name="signed_out")
async def signed_out(request: Request) -> Response:
    return render(request, "signed_out.html", None)
