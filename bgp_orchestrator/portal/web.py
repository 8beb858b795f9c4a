"""What every portal page shares: templates, the signed-in user, CSRF-checked forms,
flash messages, role checks and the security headers."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.portal.auth import PortalUser, user_of
from bgp_orchestrator.portal.sessions import csrf_token, csrf_valid
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database


class Predictor(Protocol):
    """The flap predictor: the Serve handle, or an in-process predictor in tests."""

    async def predict_json(self, session_ids: list[str]) -> bytes: ...


class LoginRequired(Exception):
    """No signed-in user: the app answers with a redirect to the login."""


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SecurityHeaders:
    """CSP (no inline script or style), no framing, no sniffing, no referrer leaks;
    HSTS when reached over TLS."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
                if scope.get("scheme") == "https":
                    message["headers"].append(
                        (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
                    )
            await send(message)

        await self.app(scope, receive, send_wrapper)


def templates() -> Jinja2Templates:
    folder = resources.files("bgp_orchestrator.portal").joinpath("templates")
    out = Jinja2Templates(directory=str(folder))
    env = out.env
    env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M UTC") if t else "-"
    env.filters["usd"] = lambda d: f"${d:,.2f}"
    return out


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def db_of(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def signed_in(request: Request) -> PortalUser:
    user = user_of(request)
    if user is None:
        raise LoginRequired()
    return user


User = Annotated[PortalUser, Depends(signed_in)]


def render(
    request: Request,
    name: str,
    user: PortalUser | None,
    *,
    http_status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page; ``nav`` names the highlighted menu entry. The flash message shows once."""
    flash = request.session.pop("flash", None)
    page: Jinja2Templates = request.app.state.templates
    return page.TemplateResponse(
        request,
        name,
        {
            "user": user,
            "csrf": csrf_token(request.session),
            "flash": flash,
            "nav": context.pop("nav", ""),
            "Role": Role,
            **context,
        },
        status_code=http_status,
    )


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(
        request, "error.html", user_of(request), http_status=status, title=title, message=message
    )


def back(request: Request, route: str, kind: str, text: str, **params: Any) -> Response:
    """Redirect after a POST (303) to ``route``, with a message shown there once."""
    request.session["flash"] = {"kind": kind, "text": text}
    return RedirectResponse(str(request.url_for(route, **params)), status_code=303)


async def form_of(request: Request) -> FormData:
    """The posted form, after checking its CSRF token against the session's."""
    form = await request.form(max_files=0, max_fields=200, max_part_size=64 * 1024)
    submitted = form.get("csrf")
    if not csrf_valid(request.session, submitted if isinstance(submitted, str) else None):
        raise Forbidden(
            "The form's security token is missing or out of date (CSRF check). "
            "Reload the page and submit it again."
        )
    return form


def text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def need(user: PortalUser, role: Role) -> None:
    if not user.may(role):
        raise Forbidden(f"This needs the {role.value} role in {user.tenant_slug}.")
