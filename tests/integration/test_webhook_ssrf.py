"""Webhooks cannot be turned against the system: the SSRF matrix through the real API,
checks again at delivery, no redirects, bounded answers, signed bodies, no URLs in logs
(real PostgreSQL, real HTTP receivers on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.alerts.signing import secret_box
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.detection.conflict import ConflictType
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.conftest import free_port
from tests.integration.conftest import lab_dispatcher, make_tenant
from tests.integration.test_conflicts_api import conflict, tenant_id, write

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PUBLIC_URL = "http://93.184.215.14/hook"  # a literal public address: no DNS needed offline


class Receiver:
    """A raw HTTP server on loopback: records each request (headers, body) and answers
    what ``answer`` says (a status and headers, and optionally an endless body)."""

    def __init__(self, status: int = 204, headers: str = "", endless: bool = False) -> None:
        self.status, self.headers, self.endless = status, headers, endless
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.sent_bytes = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:]
            headers = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in lines if ": " in ln)}
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            self.requests.append((headers, body))
            if self.endless:
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: text/plain\r\n\r\n".encode()
                )
                chunk = b"x" * 65536
                while True:
                    writer.write(chunk)
                    await writer.drain()
                    self.sent_bytes += len(chunk)
            writer.write(
                f"HTTP/1.1 {self.status} X\r\n{self.headers}Content-Length: 0\r\n\r\n".encode()
            )
            await writer.drain()
        writer.close()


@pytest.fixture
async def strict(
    database_url: str, db: Database, clean: None, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The API with production's egress rules: public addresses only."""
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        yield client, settings


SSRF_MATRIX = [
    "http://127.0.0.1/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://10.0.0.5/hook",
    "http://10.255.255.254:8080/",
    "http://192.168.1.1/",
    "http://172.16.5.4/",
    "http://[fe80::1]/",
    "http://0.0.0.0:8000/",
    "http://224.0.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://localhost:8000/api/v1/tenants",  # a name resolving to 127.0.0.1
]


async def test_the_ssrf_matrix_is_refused_on_save_with_422_naming_url(
    strict: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _ = strict
    acme = await make_tenant(client, "acme")
    for i, url in enumerate(SSRF_MATRIX):
        r = await client.post(
            "/api/v1/webhooks", headers=acme.headers, json={"name": f"h{i}", "url": url}
        )
        assert r.status_code == 422, (url, r.text)
        assert r.json()["field"] == "url", (url, r.json())
    r = await client.get("/api/v1/webhooks", headers=acme.headers)
    assert r.json()["total"] == 0

    r = await client.post(
        "/api/v1/webhooks", headers=acme.headers, json={"name": "noc", "url": PUBLIC_URL}
    )
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    for url in ("http://127.0.0.1:6379/", "http://localhost/"):
        r = await client.patch(f"/api/v1/webhooks/{hook}", headers=acme.headers, json={"url": url})
        assert r.status_code == 422 and r.json()["field"] == "url", r.text
    r = await client.get(f"/api/v1/webhooks/{hook}", headers=acme.headers)
    assert r.json()["url"] == PUBLIC_URL


async def test_secrets_are_shown_once_stored_encrypted_and_rotated(
    strict: tuple[httpx.AsyncClient, Settings], db: Database
) -> None:
    client, _ = strict
    acme, globex = await make_tenant(client, "acme"), await make_tenant(client, "globex")
    r = await client.post(
        "/api/v1/webhooks", headers=acme.headers, json={"name": "noc", "url": PUBLIC_URL}
    )
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    hook = created["id"]
    shown = [
        (await client.get(f"/api/v1/webhooks/{hook}", headers=acme.headers)).text,
        (await client.get("/api/v1/webhooks", headers=acme.headers)).text,
        (await client.patch(f"/api/v1/webhooks/{hook}", headers=acme.headers, json={})).text,
    ]
    assert all("secret" not in text for text in shown)
    async with db.connection() as conn:
        stored = await conn.fetchval("SELECT secret_ciphertext FROM webhooks WHERE id = $1", hook)
    assert stored and secret.removeprefix("whsec_") not in stored

    r = await client.post(f"/api/v1/webhooks/{hook}/secret", headers=globex.headers)
    assert r.status_code == 404
    r = await client.post(f"/api/v1/webhooks/{hook}/secret", headers=acme.headers)
    assert r.status_code == 200 and r.json()["secret"] not in ("", secret)


async def test_dns_pointing_at_loopback_by_delivery_time_is_refused(
    strict: tuple[httpx.AsyncClient, Settings], db: Database
) -> None:
    """A webhook saved while its name was public that now resolves to 127.0.0.1 (here:
    `localhost`, written past the API as a DNS change would be): the attempt is refused
    and nothing reaches the listener."""
    client, settings = strict
    acme = await make_tenant(client, "acme")
    r = await client.post(
        "/api/v1/webhooks", headers=acme.headers, json={"name": "noc", "url": PUBLIC_URL}
    )
    hook = r.json()["id"]
    async with Receiver() as listener:
        rebound = listener.url.replace("127.0.0.1", "localhost")
        async with db.connection() as conn:
            await conn.execute("UPDATE webhooks SET url = $1 WHERE id = $2", rebound, hook)
        await write(
            db, conflict(await tenant_id(db, "acme"), ConflictType.EXACT_HIJACK, "45.65.0.0/24", 1)
        )
        dispatcher = AlertDispatcher(db, secrets=secret_box(settings), max_attempts=1)
        assert await dispatcher.fan_out() == 1
        async with httpx.AsyncClient() as http:
            assert await dispatcher.deliver_due(http) == 1
        assert listener.requests == []
    r = await client.get(f"/api/v1/webhooks/{hook}/deliveries", headers=acme.headers)
    [item] = r.json()["items"]
    assert item["status"] == "failed" and item["last_error"].startswith("Refused")
    assert "loopback" in item["last_error"]


async def test_signed_deliveries_no_redirects_bounded_answers_and_no_urls_in_logs(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lab (127.0.0.0/8 allowed): a receiver that verifies the signature, one that
    redirects to another loopback port, one that answers 500 with an endless body."""
    acme = await make_tenant(client, "acme")
    async with (
        Receiver() as good,
        Receiver() as target_of_redirect,
        Receiver(status=500, endless=True) as flood,
    ):
        redirector = Receiver(302, f"Location: {target_of_redirect.url}\r\n")
        async with redirector:
            secrets: dict[str, str] = {}
            for name, url in (
                ("good", good.url),
                ("redirect", redirector.url),
                ("flood", flood.url),
            ):
                r = await client.post(
                    "/api/v1/webhooks", headers=acme.headers, json={"name": name, "url": url}
                )
                assert r.status_code == 201, r.text
                secrets[name] = r.json()["secret"]
            await write(
                db,
                conflict(
                    await tenant_id(db, "acme"), ConflictType.EXACT_HIJACK, "45.65.1.0/24", 666
                ),
            )
            dispatcher = lab_dispatcher(db, settings, max_attempts=1, timeout_s=3.0)
            assert await dispatcher.fan_out() == 1  # one event, three deliveries
            caplog.set_level(logging.DEBUG)
            started = time.monotonic()
            async with httpx.AsyncClient() as http:
                assert await dispatcher.deliver_due(http) == 3
            elapsed = time.monotonic() - started

    [(headers, body)] = good.requests
    payload = Webhook(secrets["good"]).verify(body, headers)
    assert payload["conflict"]["prefix"] == "45.65.1.0/24"
    assert headers["webhook-id"] == headers["x-bgpo-delivery"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["host"] == f"127.0.0.1:{good.port}"

    assert len(redirector.requests) == 1 and target_of_redirect.requests == []
    async with db.connection() as conn:
        errors: dict[str, str | None] = dict(
            await conn.fetch(  # type: ignore[arg-type]
                "SELECT w.name, d.last_error FROM webhook_deliveries d "
                "JOIN webhooks w ON w.id = d.webhook_id"
            )
        )
    assert errors["redirect"] == "HTTP 302: redirects are not followed"
    # The endless answer was cut at the cap, not read for the whole timeout.
    assert (errors["flood"] or "").startswith("HTTP 500: xxx")
    assert elapsed < 2.5, elapsed
    assert errors["good"] is None

    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "gave up" in logged  # the two failures were logged ...
    for receiver in (good, redirector, flood, target_of_redirect):
        assert str(receiver.port) not in logged  # ... without their URLs
    assert "/hook" not in logged
