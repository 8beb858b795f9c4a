"""Prometheus metrics of the API process, exported at ``/metrics``.

A pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on the hot
path) counts requests and their latency by route template, so the label set
stays bounded whatever paths clients send. Each Serve replica exports its own
series; Ray's own metrics export adds the Serve-level view.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "bgpo_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bgpo_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.db_up = Gauge(
            "bgpo_database_up",
            "1 if PostgreSQL answered the last readiness probe",
            registry=self.registry,
        )
        self.db_ping = Gauge(
            "bgpo_database_ping_seconds",
            "Latency of the last readiness probe",
            registry=self.registry,
        )

    def render(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Also counts each tenant's API calls for its usage: a request whose tenant was
    resolved (``request.state.tenant_id``) adds one to ``usage`` (an in-memory
    :class:`~bgp_orchestrator.usage.recorder.UsageRecorder`, flushed in batches)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, usage: Any = None) -> None:
        self.app = app
        self.metrics = metrics
        self.usage = usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
            state = scope.get("state")
            if self.usage is not None and state:
                tenant_id = state.get("tenant_id")
                if tenant_id is None and state.get("principal") is not None:
                    tenant_id = state["principal"].tenant_id
                if tenant_id is not None:
                    self.usage.add(tenant_id, "api_calls")
