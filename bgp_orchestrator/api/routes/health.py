"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bgp_orchestrator import __version__
from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import DatabaseDep
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.errors import ServiceUnavailable

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness: the process answers",
    dependencies=[allow(Access.PUBLIC)],
)
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL answers",
    responses=documented(503),
    dependencies=[allow(Access.PUBLIC)],
)
async def readyz(request: Request, db: DatabaseDep) -> Response:
    metrics = request.app.state.metrics
    try:
        latency = await db.ping(timeout_s=2.0)
    except ServiceUnavailable as exc:
        metrics.db_up.set(0)
        return JSONResponse(
            {"status": "unavailable", "checks": {"postgres": {"ok": False, "error": exc.message}}},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    metrics.db_up.set(1)
    metrics.db_ping.set(latency)
    return JSONResponse(
        {
            "status": "ready",
            "checks": {"postgres": {"ok": True, "latency_ms": round(latency * 1000, 2)}},
        }
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[allow(Access.PUBLIC)],
)
async def metrics(request: Request) -> Response:
    rendered: Response = request.app.state.metrics.render(request)
    return rendered
