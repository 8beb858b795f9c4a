"""Webhook delivery under faults, with real HTTP servers and real PostgreSQL: a receiver
that never answers, one that trickles bytes, and dispatchers killed mid-request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bgp_orchestrator.detection.conflict import ConflictType
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.conftest import REPO, free_port
from tests.integration.conftest import Tenant, lab_dispatcher, make_tenant
from tests.integration.tcp_server import HeldConnections
from tests.integration.test_conflicts_api import conflict, tenant_id, write

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class FastReceiver:
    """Answers 204 at once and notes when each conflict's event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrived[body["conflict"]["prefix"]] = time.monotonic()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FastReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentReceiver(HeldConnections):
    """Accepts connections and reads the request; then never answers (``trickle``: sends a
    status line and one byte of a header every 0.2 s, forever)."""

    def __init__(self, trickle: bool = False) -> None:
        super().__init__()
        self.trickle = trickle
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[dict[str, str]] = []
        self.arrivals = asyncio.Event()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        # Cancelled at teardown: end quietly (Python 3.11's stream callback would log it).
        with contextlib.suppress(Exception, asyncio.CancelledError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = dict(line.split(": ", 1) for line in lines if ": " in line)
                await reader.readexactly(int(headers.get("Content-Length", 0)))
                self.requests.append(headers)
                self.arrivals.set()
                if self.trickle:
                    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while True:
                        await writer.drain()
                        await asyncio.sleep(0.2)
                        writer.write(b"a")
                await asyncio.sleep(3600)

    async def wait_for(self, count: int, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while len(self.requests) < count:
            self.arrivals.clear()
            await asyncio.wait_for(self.arrivals.wait(), max(0.01, deadline - time.monotonic()))


@pytest.fixture
def fast_receiver() -> Iterator[FastReceiver]:
    with FastReceiver() as r:
        yield r


@pytest.fixture
async def silent_receiver() -> AsyncIterator[SilentReceiver]:
    async with SilentReceiver() as r:
        yield r


async def add_hook(client: httpx.AsyncClient, tenant: Tenant, url: str) -> int:
    r = await client.post(
        "/api/v1/webhooks", headers=tenant.headers, json={"name": "noc", "url": url}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def deliveries(db: Database, webhook_id: int) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id", webhook_id
        )
    return [dict(r) for r in rows]


async def wait_until_failed(db: Database, webhook_id: int, count: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        rows = await deliveries(db, webhook_id)
        if sum(r["status"] == "failed" for r in rows) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all failed: {[r['status'] for r in rows]}")


async def latencies(
    db: Database, tenant: int, receiver: FastReceiver, start: int, count: int
) -> list[float]:
    """Write ``count`` conflicts 0.3 s apart; seconds from each commit to its arrival."""
    written = {}
    for i in range(start, start + count):
        prefix = f"91.200.{i}.0/24"
        await write(db, conflict(tenant, ConflictType.EXACT_HIJACK, prefix, 666))
        written[prefix] = time.monotonic()
        await asyncio.sleep(0.3)
    for _ in range(300):
        if set(written) <= set(receiver.arrived):
            break
        await asyncio.sleep(0.05)
    assert set(written) <= set(receiver.arrived), "events did not arrive"
    return sorted(receiver.arrived[p] - t for p, t in written.items())


async def test_a_hanging_receiver_delays_only_its_own_deliveries(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    fast_receiver: FastReceiver,
    silent_receiver: SilentReceiver,
) -> None:
    stuck = await make_tenant(client, "stuck")
    brisk = await make_tenant(client, "brisk")
    stuck_hook = await add_hook(client, stuck, silent_receiver.url)
    await add_hook(client, brisk, fast_receiver.url)
    stuck_id, brisk_id = await tenant_id(db, "stuck"), await tenant_id(db, "brisk")
    dispatcher = lab_dispatcher(
        db, settings, timeout_s=1.0, interval_s=0.25, max_attempts=2, backoff_s=0.5, lease_s=5.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        baseline = await latencies(db, brisk_id, fast_receiver, 0, 6)
        # 12 events for a receiver that accepts and never answers: each attempt takes the
        # full timeout, 4 at a time, twice each (max_attempts=2).
        await write(
            db,
            *(
                conflict(stuck_id, ConflictType.EXACT_HIJACK, f"45.65.{i}.0/24", 13335)
                for i in range(12)
            ),
        )
        await silent_receiver.wait_for(4, 5)
        hanging = await latencies(db, brisk_id, fast_receiver, 100, 6)
        assert dispatcher.stats()["in_flight"] >= 1  # the stuck deliveries were still going
        print(
            f"\nother tenant's delivery latency (s): alone max {baseline[-1]:.3f} "
            f"median {baseline[len(baseline) // 2]:.3f}; beside a hanging receiver max "
            f"{hanging[-1]:.3f} median {hanging[len(hanging) // 2]:.3f}"
        )
        assert hanging[-1] < 1.0  # one dispatch interval (0.25 s) and the fan-out
        assert hanging[-1] < baseline[-1] + 0.5
        await wait_until_failed(db, stuck_hook, 12, 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    rows = await deliveries(db, stuck_hook)
    assert all(r["attempts"] == 2 and r["failed_at"] is not None for r in rows)
    assert all(r["last_error"].startswith("Timeout") for r in rows)
    assert len(silent_receiver.requests) == 24  # each delivery tried twice, no more
    attempts = sorted(int(h["X-BGPO-Attempt"]) for h in silent_receiver.requests)
    assert attempts == [1] * 12 + [2] * 12
    assert dispatcher.counters.given_up == 12 and dispatcher.counters.failed_attempts == 24

    # The API lists them, paged, for the owner only.
    base = f"/api/v1/webhooks/{stuck_hook}/deliveries"
    r = await client.get(f"{base}?status=failed&limit=5&offset=10", headers=stuck.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (12, 5, 10, 2)
    item = page["items"][0]
    assert item["status"] == "failed" and item["attempts"] == 2
    assert item["event"] == "opened" and item["failed_at"] and item["next_attempt_at"] is None
    assert "Timeout" in item["last_error"]
    r = await client.get(f"{base}?status=delivered", headers=stuck.headers)
    assert r.json()["total"] == 0
    r = await client.get(f"{base}?status=failed", headers=brisk.headers)
    assert r.status_code == 404 and r.json()["code"] == "webhook-not-found"
    r = await client.get(f"{base}?status=lost", headers=stuck.headers)
    assert r.status_code == 422 and r.json()["field"].startswith("status")

    # A failed delivery can be queued again, once.
    retry = f"{base}/{item['id']}/retry"
    r = await client.post(retry, headers=brisk.headers)
    assert r.status_code == 404
    r = await client.post(retry, headers=stuck.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["attempts"] == 0
    r = await client.post(retry, headers=stuck.headers)
    assert r.status_code == 409 and r.json()["code"] == "delivery-not-failed"
    r = await client.post(f"{base}/999999/retry", headers=stuck.headers)
    assert r.status_code == 404 and r.json()["code"] == "delivery-not-found"


async def test_a_receiver_trickling_bytes_cannot_hold_an_attempt_past_its_timeout(
    db: Database, settings: Settings
) -> None:
    async with SilentReceiver(trickle=True) as trickle, httpx.AsyncClient() as http:
        # The premise: each byte resets httpx's own read timeout, so it alone never ends.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(http.post(trickle.url, json={}, timeout=1.0), 3.0)
        dispatcher = lab_dispatcher(db, settings, timeout_s=1.0)
        started = time.monotonic()
        error = await dispatcher.post(http, trickle.url, {"event": "opened"}, {})
        elapsed = time.monotonic() - started
    assert error is not None and error.startswith("Timeout")
    assert 0.9 < elapsed < 1.5


KILLABLE = """
import asyncio, sys
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.integration.conftest import LAB_NETWORKS, lab_dispatcher

settings = Settings(data_dir=sys.argv[2], webhook_allowed_networks=LAB_NETWORKS)
dispatcher = lab_dispatcher(
    Database(sys.argv[1]), settings, timeout_s=1.0, lease_s=2.0, interval_s=0.1, max_attempts=2
)
asyncio.run(dispatcher.run(asyncio.Event()))
"""


async def kill_during_next_attempt(
    database_url: str, settings: Settings, receiver: SilentReceiver
) -> None:
    """Run a dispatcher process and SIGKILL it as soon as its request reaches the receiver."""
    seen = len(receiver.requests)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLABLE, database_url, str(settings.data_dir), env=env
    )
    try:
        await receiver.wait_for(seen + 1, 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def test_an_attempt_cut_short_by_a_killed_dispatcher_counts_and_ends_failed(
    client: httpx.AsyncClient,
    db: Database,
    database_url: str,
    settings: Settings,
    silent_receiver: SilentReceiver,
) -> None:
    acme = await make_tenant(client, "acme")
    hook = await add_hook(client, acme, silent_receiver.url)
    await write(
        db, conflict(await tenant_id(db, "acme"), ConflictType.EXACT_HIJACK, "45.65.0.0/24", 1)
    )
    dispatcher = lab_dispatcher(db, settings, timeout_s=1.0, lease_s=2.0, max_attempts=2)
    assert await dispatcher.fan_out() == 1

    await kill_during_next_attempt(database_url, settings, silent_receiver)
    [row] = await deliveries(db, hook)
    assert (row["status"], row["attempts"]) == ("pending", 1)  # counted, though never finished
    assert row["last_attempt_at"] is not None

    await asyncio.sleep(2.2)  # the lease runs out: the delivery is due again
    await kill_during_next_attempt(database_url, settings, silent_receiver)
    [row] = await deliveries(db, hook)
    assert (row["status"], row["attempts"]) == ("pending", 2)

    await asyncio.sleep(2.2)  # the last allowed attempt never reported: given up, not retried
    assert await dispatcher.expire() == 1
    async with httpx.AsyncClient() as http:
        assert await dispatcher.deliver_due(http) == 0
    [row] = await deliveries(db, hook)
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert "attempt 2 never reported" in row["last_error"]
    assert [h["X-BGPO-Delivery"] for h in silent_receiver.requests] == [str(row["id"])] * 2
    r = await client.get(f"/api/v1/webhooks/{hook}/deliveries?status=failed", headers=acme.headers)
    assert r.status_code == 200 and r.json()["total"] == 1
