"""The FastAPI application factory.

``create_app`` builds the app; its lifespan opens (lazily) and closes the
database pool. Serve calls it inside the replica (see ``deployments.api``);
tests and ``bench/api_latency.py`` call it directly under plain ASGI servers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bgp_orchestrator import __version__, log_redaction
from bgp_orchestrator.api import problems
from bgp_orchestrator.api.body_limit import BodyLimitMiddleware
from bgp_orchestrator.api.broadcast import ConflictBroadcaster
from bgp_orchestrator.api.deps import TenantCache
from bgp_orchestrator.api.metrics import ApiMetrics, MetricsMiddleware
from bgp_orchestrator.api.ratelimit import open_rate_limiter
from bgp_orchestrator.api.routes import (
    anomalies,
    apikeys,
    asns,
    conflicts,
    features,
    health,
    ml,
    neighbors,
    prefixes,
    sessions,
    tenants,
    webhooks,
)
from bgp_orchestrator.api.security_headers import SecurityHeadersMiddleware
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database, open_database
from bgp_orchestrator.usage.recorder import UsageRecorder

log = logging.getLogger(__name__)

DESCRIPTION = """
Peering inventory of BGP Orchestrator: the tenant's own ASNs, its upstream /
peer / customer neighbours, BGP sessions and monitored prefixes.

Writes are checked against stored configuration and answer **409** with an
explanation when they contradict it; invalid values answer **422** naming the
field. Errors are RFC 9457 problem documents with a stable `code`.

Every route but the health checks needs a credential: an OIDC bearer token of the
configured issuer (Keycloak in production, the embedded provider in development), or
an API key (`Authorization: Bearer bgpo_...` or `X-API-Key`). Development mode, while
the API listens on loopback only, also accepts the `X-Tenant` header (acting as that
tenant's admin; `X-Role` picks another role, `X-Role: platform-admin` the platform
administrator). No credential answers **401**, too small a role **403**, another
tenant's object **404**.
"""


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the API. ``database`` is injected by tests; otherwise built from settings."""
    settings = settings or Settings()
    log_redaction.install()  # no token, key or password reaches this process's logs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or open_database(settings)
        app.state.database = db
        dsn = settings.database_url.get_secret_value() if settings.database_url else None
        app.state.broadcaster = ConflictBroadcaster(dsn or "")
        # API calls per tenant, and the day's inventory, written every 30 s.
        usage.db = db
        stop_usage = asyncio.Event()
        usage_task = asyncio.create_task(usage.run(stop_usage), name="usage")
        if getattr(app.state, "rate_limiter", None) is None:
            app.state.rate_limiter = open_rate_limiter(settings)
        try:
            yield
        finally:
            stop_usage.set()
            await usage_task
            await app.state.rate_limiter.aclose()
            await app.state.broadcaster.close()
            if getattr(app.state, "metric_store", None) is not None:
                await app.state.metric_store.close()
            if database is None:
                await db.close()

    app = FastAPI(
        title="BGP Orchestrator",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.metrics = ApiMetrics()
    app.state.tenant_cache = TenantCache()
    usage = UsageRecorder(
        database, settings.usage_flush_s, snapshot=True
    )  # the lifespan sets its db when None
    app.state.usage = usage
    if database is not None:
        app.state.database = database
        dsn = settings.database_url.get_secret_value() if settings.database_url else ""
        app.state.broadcaster = ConflictBroadcaster(dsn)
    problems.install(app)
    # Outermost last: metrics count every answer, the 413s and security headers included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(
        SecurityHeadersMiddleware,
        trusted_proxies=settings.trusted_proxies,
        hsts_max_age_s=settings.hsts_max_age_s,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, usage=usage)
    routers = (
        health,
        tenants,
        asns,
        neighbors,
        sessions,
        prefixes,
        conflicts,
        webhooks,
        ml,
        features,
        anomalies,
        apikeys,
    )
    for module in routers:
        app.include_router(module.router)
    return app
