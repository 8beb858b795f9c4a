"""The portal as a user meets it, for the portal tests: the real OIDC provider process
(``oidc-provider-mock``, as `bgpo up` runs it, with its demo users), the API and the
portal each under uvicorn (the portal mounted at ``/portal`` like Serve's route prefix),
a migrated database of their own, a webhook receiver on loopback and an SMTP server
receiving the alert e-mail (none with ``smtp=False``: e-mail is off)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.routing import Mount

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.local.oidc import EmbeddedOIDC
from bgp_orchestrator.portal.app import create_portal_app
from bgp_orchestrator.settings import Settings
from tests.conftest import free_port
from tests.integration.conftest import LiveServer
from tests.integration.smtp_sink import SmtpSink

DEMO_ADMIN = "admin@demo.example"
DEMO_VIEWER = "viewer@demo.example"


@dataclass
class Receiver:
    """A webhook receiver on loopback that keeps every body it was sent."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def mounted(portal: Any) -> Starlette:
    """The portal under /portal, its lifespan run by the outer app (as Serve does)."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with portal.router.lifespan_context(portal):
            yield

    return Starlette(routes=[Mount("/portal", app=portal)], lifespan=lifespan)


@dataclass
class PortalStack:
    settings: Settings
    oidc: EmbeddedOIDC
    api: LiveServer
    portal: LiveServer
    receiver: Receiver
    database_url: str
    portal_app: Any
    smtp: SmtpSink | None = None

    @property
    def portal_url(self) -> str:
        return f"{self.portal.url}/portal"

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.database_url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        # In a thread of its own: Playwright's sync API keeps a loop on the test's thread.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()


def start_stack(database_url: str, data_dir: Path, smtp: bool = True) -> Iterator[PortalStack]:
    sink = SmtpSink() if smtp else None
    mail: dict[str, Any] = {}
    if sink is not None:
        mail = {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_tls": "none"}
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        embedded_oidc_port=free_port(),
        metric_store="parquet",
        usage_flush_s=0.5,
        webhook_allowed_networks=["127.0.0.0/8"],  # the test's receiver is on loopback
        smtp_from="alerts@bgpo.example",
        **mail,
    )
    oidc = EmbeddedOIDC(settings)
    oidc.start()
    receiver = Receiver()
    portal_app = create_portal_app(settings)
    try:
        with (
            LiveServer(create_app(settings)) as api,
            LiveServer(mounted(portal_app)) as portal,
            sink or contextlib.nullcontext(),
        ):
            yield PortalStack(settings, oidc, api, portal, receiver, database_url, portal_app, sink)
    finally:
        receiver.close()
        oidc.stop()
