"""The portal application factory.

``create_portal_app`` builds a FastAPI app whose routes have no prefix: Ray
Serve mounts it under ``/portal`` (the ``route_prefix`` becomes the ASGI
``root_path``) and the browser tests mount it the same way. Every page needs a
signed-in user of a tenant and shows only that tenant's data, read with the
session's tenant id; every POST carries the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bgp_orchestrator import __version__
from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.mailer import Mailer
from bgp_orchestrator.alerts.signing import secret_box
from bgp_orchestrator.errors import BgpoError, InvalidInput, NotFound, ServiceUnavailable
from bgp_orchestrator.portal.auth import issuer_url, oauth_client, session_secret
from bgp_orchestrator.portal.pages import (
    alerts,
    apikeys,
    billing,
    dashboard,
    login,
    tickets,
    usage,
)
from bgp_orchestrator.portal.sessions import ServerSessionMiddleware, SessionStore
from bgp_orchestrator.portal.web import (
    Forbidden,
    LoginRequired,
    Predictor,
    SecurityHeaders,
    error_page,
    templates,
)
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database, open_database

SESSION_MAX_AGE_S = 8 * 3600
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self' {issuer}; frame-ancestors 'none'; base-uri 'none'"
)
STATUS = {NotFound: (404, "Not found"), InvalidInput: (422, "Invalid input")}


def create_portal_app(
    settings: Settings | None = None,
    database: Database | None = None,
    predictor: Predictor | None = None,
) -> FastAPI:
    """Build the portal. ``database`` is injected by tests; otherwise opened in the lifespan."""
    settings = settings or Settings()
    issuer = issuer_url(settings)
    secret = session_secret(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or open_database(settings)
        app.state.database = db
        app.state.sessions = SessionStore(db, SESSION_MAX_AGE_S)
        app.state.dispatcher = AlertDispatcher(
            db,
            timeout_s=settings.webhook_timeout_s,
            egress=EgressPolicy.from_settings(settings),
            secrets=secret_box(settings),
            max_answer_bytes=settings.webhook_max_response_bytes,
            mailer=Mailer.from_settings(settings),
        )
        app.state.http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        app.state.oidc = oauth_client(settings)
        try:
            yield
        finally:
            await app.state.http.aclose()
            if database is None:
                await db.close()

    app = FastAPI(
        title="BGP Orchestrator portal",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.issuer = issuer
    app.state.predictor = predictor
    app.state.templates = templates()
    static = resources.files("bgp_orchestrator.portal").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(
        ServerSessionMiddleware,
        store_of=lambda: app.state.sessions,
        secret=secret,
        max_age_s=SESSION_MAX_AGE_S,
    )
    app.add_middleware(SecurityHeaders, csp=CSP.format(issuer=issuer))
    for module in (login, dashboard, tickets, usage, billing, alerts, apikeys):
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET":
            request.session["next"] = request.url.path
        return RedirectResponse(str(request.url_for("login")), status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return error_page(request, 403, "Not allowed", exc.message)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> Response:
        return error_page(request, 503, "Unavailable", exc.message)

    @app.exception_handler(BgpoError)
    async def _refused(request: Request, exc: BgpoError) -> Response:
        status, title = STATUS.get(type(exc), (400, "Request refused"))
        return error_page(request, status, title, exc.message)

    return app
