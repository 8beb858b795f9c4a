"""The RIS Live client against a local websocket server speaking the RIS Live protocol.

The server checks the ris_subscribe messages, streams real messages plus a
malformed one, drops the connection, and on the reconnect sends two messages
again before new ones: the client must reconnect and publish nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bgp_orchestrator.ingest.rislive_client import RisLiveClient, Subscription
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def message(i: int, prefix: str) -> str:
    return json.dumps(
        {
            "type": "ris_message",
            "data": {
                "timestamp": 1700000000.0 + i,
                "peer": "192.0.2.1",
                "peer_asn": "3356",
                "id": f"192.0.2.1-{i}",
                "host": "rrc00",
                "type": "UPDATE",
                "path": [3356, 13335],
                "announcements": [{"next_hop": "192.0.2.1", "prefixes": [prefix]}],
            },
        }
    )


async def test_reconnects_and_skips_what_it_already_published(bgp_data: Path) -> None:
    from websockets.asyncio.server import serve

    real = [
        line
        for line in (bgp_data / "rislive" / "ris-live-stream.2019-03-26.jsonl")
        .read_text()
        .splitlines()[:1]
    ]
    subscriptions: list[dict[str, Any]] = []
    connections = 0

    async def handler(ws: Any) -> None:
        nonlocal connections
        connections += 1
        subscriptions.append(json.loads(await ws.recv()))
        subscriptions.append(json.loads(await ws.recv()))
        if connections == 1:
            for frame in [*real, message(1, "1.1.1.0/24"), message(2, "8.8.8.0/24"), "{not json"]:
                await ws.send(frame)
            await ws.close()  # the connection drops
            return
        for i, prefix in ((1, "1.1.1.0/24"), (2, "8.8.8.0/24"), (3, "9.9.9.0/24")):
            await ws.send(message(i, prefix))  # 1 and 2 again, then a new one
        await ws.wait_closed()

    port = free_port()
    async with serve(handler, "127.0.0.1", port):
        client = RisLiveClient(
            f"ws://127.0.0.1:{port}/v1/ws/",
            Subscription(host="rrc00", prefix="1.0.0.0/8"),
            max_backoff_s=0.2,
        )
        stop = asyncio.Event()
        prefixes: list[str] = []
        dead = []
        async for batch in client.batches(stop):
            prefixes.extend(u.prefix for u in batch.updates)
            dead.extend(letter.code for letter in batch.dead)
            if "9.9.9.0/24" in prefixes:
                stop.set()
                break
    assert prefixes == ["45.161.192.0/23", "1.1.1.0/24", "8.8.8.0/24", "9.9.9.0/24"]
    assert dead == ["malformed-json"]
    assert client.connections == 2 and client.duplicates == 2
    update_sub = subscriptions[0]
    assert update_sub["type"] == "ris_subscribe"
    assert update_sub["data"] == {
        "type": "UPDATE",
        "host": "rrc00",
        "prefix": "1.0.0.0/8",
        "moreSpecific": False,
        "lessSpecific": False,
    }
    assert subscriptions[1]["data"]["type"] == "RIS_PEER_STATE"


async def test_a_busy_feed_comes_in_batches_and_shards_split_it_by_peer() -> None:
    from websockets.asyncio.server import serve

    from bgp_orchestrator.ingest.shard import Shard

    frames = [
        json.dumps(
            {
                "type": "ris_message",
                "data": {
                    "timestamp": 1700000000.0 + i,
                    "peer": f"192.0.2.{i % 50}",
                    "peer_asn": "3356",
                    "id": f"m-{i}",
                    "host": "rrc00",
                    "type": "UPDATE",
                    "path": [3356, 13335],
                    "announcements": [
                        {"next_hop": "192.0.2.1", "prefixes": [f"10.{i % 256}.{i // 256}.0/24"]}
                    ],
                },
            }
        )
        for i in range(5000)
    ]

    async def handler(ws: Any) -> None:
        await ws.recv()
        await ws.recv()
        for frame in frames:
            await ws.send(frame)
        await ws.wait_closed()

    async def receive(shard: Shard | None) -> tuple[list[tuple[str, str]], int]:
        client = RisLiveClient(
            f"ws://127.0.0.1:{port}/v1/ws/", Subscription(), max_backoff_s=0.2, shard=shard
        )
        stop = asyncio.Event()
        got: list[tuple[str, str]] = []
        batches = 0
        async for batch in client.batches(stop):
            batches += 1
            got.extend((u.peer_address, u.prefix) for u in batch.updates)
            if client.frames >= len(frames):
                stop.set()
        return got, batches

    port = free_port()
    async with serve(handler, "127.0.0.1", port):
        whole, batches = await receive(None)
        first, _ = await receive(Shard(1, 2))
        second, _ = await receive(Shard(2, 2))
    assert len(whole) == 5000 and batches < 2500  # many frames per batch
    assert sorted(first + second) == sorted(whole)
    assert not {p for p, _ in first} & {p for p, _ in second}
    for peer in {p for p, _ in whole}:  # each peer's updates in the order sent
        part = first if any(p == peer for p, _ in first) else second
        assert [x for x in part if x[0] == peer] == [x for x in whole if x[0] == peer]
