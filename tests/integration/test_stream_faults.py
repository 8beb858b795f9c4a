"""The conflict live stream under faults: a lost LISTEN connection, long replays, commits
out of id order and slow clients, over real PostgreSQL and a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.api.broadcast import ConflictBroadcaster
from bgp_orchestrator.detection.conflict import ConflictType
from bgp_orchestrator.detection.sink import aggregate
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage import conflicts as store
from bgp_orchestrator.storage.database import Database
from tests.faults import TcpProxy
from tests.integration.conftest import LiveServer
from tests.integration.test_conflicts_api import conflict, tenant_id, write

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

Event = tuple[int, str, str]  # event id, event, conflict prefix


def prefix(i: int) -> str:
    return f"45.{i // 256 % 256}.{i % 256}.0/24"


async def write_many(db: Database, tenant: int, start: int, count: int) -> None:
    """``count`` new conflicts (one ``opened`` event each) in one transaction."""
    await write(
        db,
        *(
            conflict(tenant, ConflictType.EXACT_HIJACK, prefix(i), 13335)
            for i in range(start, start + count)
        ),
    )


async def event_ids(db: Database, tenant: int) -> list[int]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT id FROM conflict_events WHERE tenant_id = $1 ORDER BY id", tenant
        )
    return [r["id"] for r in rows]


class StreamClient:
    """An SSE client that collects events until it has ``count`` or is cancelled."""

    def __init__(self, base_url: str, slug: str, last_event_id: int | None = None) -> None:
        self.base_url = base_url
        self.headers = {"X-Tenant": slug}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.events: list[Event] = []
        self.connected = asyncio.Event()
        self.enough = asyncio.Event()
        self.count = 0

    async def run(self, count: int) -> None:
        self.count = count
        async with (
            httpx.AsyncClient(base_url=self.base_url, timeout=60) as client,
            client.stream("GET", "/api/v1/conflicts/stream", headers=self.headers) as response,
        ):
            assert response.status_code == 200
            event_id, event = 0, ""
            async for line in response.aiter_lines():
                if line.startswith("retry:"):
                    self.connected.set()
                elif line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    assert event != "overflow", "the stream told this client to reconnect"
                    self.events.append((event_id, event, json.loads(line[6:])["prefix"]))
                    if len(self.events) >= count:
                        self.enough.set()
                        return


def proxied(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


@pytest.fixture
def pg_address(database_url: str) -> tuple[str, int]:
    parts = urlsplit(database_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


async def create_tenant(base_url: str, slug: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post(
            "/api/v1/tenants",
            json={"slug": slug, "name": slug.title()},
            headers={"X-Role": "platform-admin"},
        )
        assert r.status_code == 201, r.text


async def test_events_written_while_the_listen_connection_is_cut_arrive_once_in_order(
    database_url: str,
    db: Database,
    clean: None,
    pg_address: tuple[str, int],
    tmp_path: Path,
) -> None:
    async with TcpProxy(*pg_address) as proxy:
        # The API reaches PostgreSQL only through the proxy (its pool and its LISTEN
        # connection); the test writes conflicts directly, as a detector would.
        settings = Settings(
            database_url=proxied(database_url, proxy.port),
            data_dir=tmp_path,
            metric_store="parquet",
        )
        app = create_app(settings)
        with LiveServer(app) as server:
            await create_tenant(server.url, "cut")
            t = await tenant_id(db, "cut")
            client = StreamClient(server.url, "cut")
            reader = asyncio.create_task(client.run(12))
            await asyncio.wait_for(client.connected.wait(), 10)
            await asyncio.sleep(0.5)
            await write_many(db, t, 0, 1)
            for _ in range(100):
                if client.events:
                    break
                await asyncio.sleep(0.05)
            assert len(client.events) == 1
            proxy.cut()
            for i in range(1, 8):  # each its own transaction, all while the stream is cut off
                await write_many(db, t, i, 1)
                await asyncio.sleep(0.2)
            assert len(client.events) == 1  # nothing got through the cut
            proxy.restore()
            await write_many(db, t, 8, 4)  # live again, right after the reconnect
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.enough.wait(), 30)
            reader.cancel()
            broadcaster: ConflictBroadcaster = app.state.broadcaster

    expected = await event_ids(db, t)
    assert len(expected) == 12
    assert [e[0] for e in client.events] == expected  # every event once, in id order
    prefixes = [e[2] for e in client.events]
    assert prefixes[:8] == [prefix(i) for i in range(8)]
    assert sorted(prefixes[8:]) == sorted(prefix(i) for i in range(8, 12))  # one transaction
    stats = broadcaster.stats()
    assert stats["connection_losses"] >= 1 and stats["connects"] >= 2  # it did reconnect


async def test_last_event_id_replays_more_than_500_events_then_goes_live(
    live_api: LiveServer, db: Database, clean: None
) -> None:
    await create_tenant(live_api.url, "replay")
    t = await tenant_id(db, "replay")
    await write_many(db, t, 0, 1)
    await write_many(db, t, 1, 1200)
    first = (await event_ids(db, t))[0]
    client = StreamClient(live_api.url, "replay", last_event_id=first)
    reader = asyncio.create_task(client.run(1201))
    for _ in range(600):
        if len(client.events) >= 1200:
            break
        await asyncio.sleep(0.05)
    assert len(client.events) == 1200
    await write_many(db, t, 5000, 1)  # after the replay, live events follow
    await asyncio.wait_for(reader, 20)
    assert [e[0] for e in client.events] == (await event_ids(db, t))[1:]
    assert client.events[-1][2] == prefix(5000)


async def test_an_event_committed_late_with_a_lower_id_is_not_skipped(
    live_api: LiveServer, db: Database, clean: None
) -> None:
    """Ids are allocated before commit: a stream that handed out id n+1 while n was still
    in flight would skip n for a client resuming from n+1. It waits for n instead."""
    await create_tenant(live_api.url, "order")
    t = await tenant_id(db, "order")
    client = StreamClient(live_api.url, "order")
    reader = asyncio.create_task(client.run(2))
    await asyncio.wait_for(client.connected.wait(), 10)
    await asyncio.sleep(0.5)
    async with db.transaction() as slow:
        await store.upsert(
            slow, aggregate([conflict(t, ConflictType.EXACT_HIJACK, prefix(1), 13335)])
        )
        await write_many(db, t, 2, 1)  # a higher id, committed first
        await asyncio.sleep(1.5)
        assert client.events == []  # held back while the lower id may still commit
    await asyncio.wait_for(reader, 20)
    assert [e[2] for e in client.events] == [prefix(1), prefix(2)]
    assert [e[0] for e in client.events] == await event_ids(db, t)


async def test_a_slow_client_is_paced_and_a_stuck_one_resumes_without_loss(
    database_url: str, db: Database, clean: None
) -> None:
    async with db.connection() as conn:
        t = int(
            await conn.fetchval(
                "INSERT INTO tenants (slug, name) VALUES ('slow', 'Slow') RETURNING id"
            )
        )
    broadcaster = ConflictBroadcaster(database_url, queue_size=5, slow_client_s=0.5)
    try:
        paced = broadcaster.subscribe(t, after=0)
        stuck = broadcaster.subscribe(t, after=0)
        await write_many(db, t, 0, 20)
        got = []
        for _ in range(20):  # a slow but steady reader gets everything, in order
            got.append((await asyncio.wait_for(paced.get(), 10))["id"])
            await asyncio.sleep(0.1)
        ids = await event_ids(db, t)
        assert got == ids and not paced.overflowed
        assert stuck.overflowed  # its queue stayed full: the stream tells it to reconnect
        seen = [stuck.queue.get_nowait()["id"] for _ in range(stuck.queue.qsize())]
        assert seen == ids[: len(seen)]
        broadcaster.unsubscribe(stuck)
        resumed = broadcaster.subscribe(t, after=seen[-1])  # what Last-Event-ID does
        rest = [(await asyncio.wait_for(resumed.get(), 10))["id"] for _ in ids[len(seen) :]]
        assert seen + rest == ids
    finally:
        await broadcaster.close()
