"""The conflicts API, its live stream and webhook delivery, over real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.sink import aggregate
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage import conflicts as store
from bgp_orchestrator.storage.database import Database
from tests.conftest import free_port
from tests.integration.conftest import LiveServer, Tenant, lab_dispatcher, make_tenant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def conflict(
    tenant_id: int | None,
    kind: ConflictType,
    prefix: str,
    origin: int,
    seen: float = 1000.0,
    resolved: bool = False,
    peer: str = "c|10.0.0.1",
    severity: Severity = Severity.CRITICAL,
    detail: str = "",
) -> Conflict:
    return Conflict(
        type=kind,
        severity=severity,
        tenant_id=tenant_id,
        prefix=prefix,
        origin_asn=origin,
        as_path=f"3356 {origin}",
        peer=peer,
        seen_at=seen,
        detail_key=detail,
        details={"reason": "test"},
        resolved=resolved,
    )


async def tenant_id(db: Database, slug: str) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug))


async def write(db: Database, *conflicts: Conflict) -> None:
    async with db.transaction() as conn:
        await store.upsert(conn, aggregate(conflicts))


async def test_upserts_are_idempotent_and_reopen_only_on_newer_observations(
    client: httpx.AsyncClient, acme: Tenant, db: Database
) -> None:
    t = await tenant_id(db, "acme")
    first = conflict(t, ConflictType.VISIBILITY_LOSS, "45.65.12.0/24", 0, seen=1000)
    await write(db, first)
    await write(db, first)  # replayed after a restart: changes nothing
    await write(
        db, conflict(t, ConflictType.VISIBILITY_LOSS, "45.65.12.0/24", 0, seen=1100, resolved=True)
    )
    await write(db, first)  # an old observation replayed: still resolved
    async with db.connection() as conn:
        states = await conn.fetch("SELECT state FROM conflicts")
        events = [
            r["event"] for r in await conn.fetch("SELECT event FROM conflict_events ORDER BY id")
        ]
    assert [r["state"] for r in states] == ["resolved"]
    assert events == ["opened", "resolved"]
    await write(db, conflict(t, ConflictType.VISIBILITY_LOSS, "45.65.12.0/24", 0, seen=1200))
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT state FROM conflicts") == "ongoing"
        events = [
            r["event"] for r in await conn.fetch("SELECT event FROM conflict_events ORDER BY id")
        ]
    assert events == ["opened", "resolved", "reopened"]


async def test_list_filters_and_state_changes(
    client: httpx.AsyncClient, acme: Tenant, db: Database
) -> None:
    t = await tenant_id(db, "acme")
    await make_tenant(client, "globex")
    other = await tenant_id(db, "globex")
    await write(
        db,
        conflict(t, ConflictType.EXACT_HIJACK, "45.65.12.0/24", 13335),
        conflict(
            t, ConflictType.SUBPREFIX_HIJACK, "45.65.12.128/25", 13335, detail="45.65.12.0/24"
        ),
        conflict(t, ConflictType.MOAS, "2a0b:4e00::/32", 6939, severity=Severity.LOW),
        conflict(other, ConflictType.EXACT_HIJACK, "91.200.8.0/22", 666),
        conflict(None, ConflictType.BOGON_PREFIX, "10.0.0.0/8", 4134, severity=Severity.INFO),
    )
    h = acme.headers

    async def ids(query: str) -> list[str]:
        r = await client.get(f"/api/v1/conflicts?{query}", headers=h)
        assert r.status_code == 200, r.text
        return sorted(c["prefix"] for c in r.json()["items"])

    assert await ids("") == ["2a0b:4e00::/32", "45.65.12.0/24", "45.65.12.128/25"]
    assert await ids("scope=global") == ["10.0.0.0/8"]
    assert len(await ids("scope=all")) == 4
    assert await ids("type=exact-prefix-hijack") == ["45.65.12.0/24"]
    assert await ids("type=moas&type=sub-prefix-hijack") == ["2a0b:4e00::/32", "45.65.12.128/25"]
    assert await ids("prefix=45.65.0.0/16") == ["45.65.12.0/24", "45.65.12.128/25"]
    assert await ids("prefix=45.65.12.200/32&prefix_match=covering") == [
        "45.65.12.0/24",
        "45.65.12.128/25",
    ]
    assert await ids("prefix=45.65.12.0/24&prefix_match=exact") == ["45.65.12.0/24"]
    assert await ids("asn=AS6939") == ["2a0b:4e00::/32"]
    assert await ids("min_severity=high") == ["45.65.12.0/24", "45.65.12.128/25"]
    assert await ids("since=2020-01-01T00:00:00Z") == []  # observations are from 1970
    r = await client.get("/api/v1/conflicts?prefix=45.65.12.1/24", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "prefix"

    listing = (await client.get("/api/v1/conflicts?type=exact-prefix-hijack", headers=h)).json()
    hijack = listing["items"][0]
    assert hijack["scope"] == "tenant" and hijack["details"] == {"reason": "test"}
    r = await client.post(f"/api/v1/conflicts/{hijack['id']}/acknowledge", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    r = await client.post(
        f"/api/v1/conflicts/{hijack['id']}/resolve", headers=h, json={"note": "origin fixed"}
    )
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    r = await client.post(f"/api/v1/conflicts/{hijack['id']}/ignore", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "ignored"
    r = await client.post(f"/api/v1/conflicts/{hijack['id']}/resolve", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "invalid-state-change"

    theirs = (await client.get("/api/v1/conflicts", headers={"X-Tenant": "globex"})).json()
    theirs_id = theirs["items"][0]["id"]
    assert (await client.get(f"/api/v1/conflicts/{theirs_id}", headers=h)).status_code == 404
    r = await client.post(f"/api/v1/conflicts/{theirs_id}/acknowledge", headers=h)
    assert r.status_code == 404
    bogon = (await client.get("/api/v1/conflicts?scope=global", headers=h)).json()["items"][0]
    r = await client.post(f"/api/v1/conflicts/{bogon['id']}/ignore", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "global-conflict-read-only"


@pytest.fixture(scope="module")
def api_server(live_api: LiveServer) -> LiveServer:
    return live_api


async def test_live_stream_delivers_new_conflicts_and_resumes(
    api_server: LiveServer, db: Database, clean: None
) -> None:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as client:
        assert (
            await client.post(
                "/api/v1/tenants",
                json={"slug": "live", "name": "Live"},
                headers={"X-Role": "platform-admin"},
            )
        ).status_code == 201
        t = await tenant_id(db, "live")
        received: list[tuple[str, str, dict[str, Any]]] = []

        async def listen(headers: dict[str, str], count: int) -> None:
            async with client.stream(
                "GET", "/api/v1/conflicts/stream", headers={"X-Tenant": "live", **headers}
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                event_id = event = ""
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        received.append((event_id, event, json.loads(line[6:])))
                        if len(received) >= count:
                            return

        listener = asyncio.create_task(listen({}, 2))
        await asyncio.sleep(1.5)  # let the subscription start
        await write(db, conflict(t, ConflictType.EXACT_HIJACK, "45.65.12.0/24", 13335))
        await write(db, conflict(None, ConflictType.BOGON_PREFIX, "10.0.0.0/8", 1))  # not theirs
        await write(db, conflict(t, ConflictType.SQUATTING, "91.200.8.0/22", 666))
        await asyncio.wait_for(listener, 20)
        assert [(e, c["type"]) for _, e, c in received] == [
            ("opened", "exact-prefix-hijack"),
            ("opened", "squatting"),
        ]
        first_id = received[0][0]
        received.clear()
        # a client that reconnects with Last-Event-ID gets what it missed
        await asyncio.wait_for(listen({"Last-Event-ID": first_id}, 1), 20)
        assert received[0][2]["type"] == "squatting"


class Receiver:
    """A local HTTP endpoint that fails its first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((dict(self.headers), body))
                status = 500 if len(receiver.requests) <= receiver.failures else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.port = free_port()
        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures=1) as r:
        yield r


async def test_webhooks_receive_matching_events_once_with_retries(
    client: httpx.AsyncClient, acme: Tenant, db: Database, receiver: Receiver, settings: Settings
) -> None:
    h = acme.headers
    url = f"http://127.0.0.1:{receiver.port}/hook"
    r = await client.post(
        "/api/v1/webhooks",
        headers=h,
        json={
            "name": "noc",
            "url": url,
            "min_severity": "high",
            "types": ["exact-prefix-hijack", "route-leak"],
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/webhooks",
        headers=h,
        json={"name": "slack", "url": url, "format": "slack", "min_severity": "critical"},
    )
    assert r.status_code == 201
    assert (
        await client.post("/api/v1/webhooks", headers=h, json={"name": "noc", "url": url})
    ).status_code == 409
    assert (
        await client.post("/api/v1/webhooks", headers=h, json={"name": "x", "url": "ftp://a"})
    ).status_code == 422
    t = await tenant_id(db, "acme")
    await write(
        db,
        conflict(t, ConflictType.EXACT_HIJACK, "45.65.12.0/24", 13335),
        conflict(
            t, ConflictType.MOAS, "45.65.12.0/24", 13335, severity=Severity.LOW, detail="1,13335"
        ),
    )
    dispatcher = lab_dispatcher(db, settings)
    async with httpx.AsyncClient() as http:
        assert await dispatcher.fan_out() == 2  # hijack -> both hooks; MOAS (low) -> none
        await dispatcher.deliver_due(http)  # the first POST fails (HTTP 500)
        async with db.connection() as conn:
            await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
        await dispatcher.deliver_due(http)
        await dispatcher.deliver_due(http)  # nothing left: no duplicates
    assert dispatcher.counters.delivered == 2 and dispatcher.counters.failed_attempts == 1
    assert len(receiver.requests) == 3
    bodies = [body for _, body in receiver.requests[1:]]
    generic = next(b for b in bodies if "conflict" in b)
    slack = next(b for b in bodies if "blocks" in b)
    assert generic["event"] == "opened" and generic["conflict"]["type"] == "exact-prefix-hijack"
    assert "45.65.12.0/24" in slack["text"] and "AS13335" in slack["text"]
    headers = [hdrs for hdrs, _ in receiver.requests]
    assert all(hdr["X-BGPO-Event"] == "opened" for hdr in headers)
    async with db.connection() as conn:
        statuses = [r["status"] for r in await conn.fetch("SELECT status FROM webhook_deliveries")]
    assert sorted(statuses) == ["delivered", "delivered"]
