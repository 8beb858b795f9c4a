"""The BMP station against a real broker (Tansu): routers that send garbage get dead
letters (and, when their framing is lost, lose only their own connection) while the
other routers' sessions keep flowing; `bgpo ingest bmp` stops on SIGTERM with
everything acknowledged."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.ingest.bmp_station import BmpStation
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from tests.conftest import free_port
from tests.integration.test_ingest_replay import _env, _read
from tests.unit.bgp import bmp_messages as m

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _route(peer: bytes, prefix: str, *path: int) -> bytes:
    pdu = m.update(
        attributes=m.origin() + m.as_path(*path) + m.next_hop("192.0.2.1"),
        announced=m.nlri(prefix),
    )
    return m.route_monitoring(peer, pdu)


async def _updates(bootstrap: str, topic: str) -> list[Update]:
    records = await _read(bootstrap, topic)
    return [u for rs in records.values() for r in rs for u in codec.decode_batch(r)]


async def _letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    records = await _read(bootstrap, topic)
    return [DeadLetter.decode(r) for rs in records.values() for r in rs]


async def _closed_by_station(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 10) == b""
    except TimeoutError:
        return False


async def test_garbage_from_one_router_never_stops_the_others(kafka_bootstrap: str) -> None:
    topic = f"bmp-{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}.dlq"
    partitions = await ensure_topics(kafka_bootstrap, topic, dlq, 4)
    publisher = UpdatePublisher(kafka_bootstrap, topic, dlq, partitions, eager=True)
    await publisher.start()
    station = BmpStation(publisher, "127.0.0.1", 0)
    await station.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(station.run(stop))
    try:
        good_r, good = await asyncio.open_connection("127.0.0.1", station.port)
        bad_r, bad = await asyncio.open_connection("127.0.0.1", station.port)
        stranger_r, stranger = await asyncio.open_connection("127.0.0.1", station.port)
        peer = m.per_peer("192.0.2.1", 64500)
        v6_peer = m.per_peer("2001:db8::1", 64501)

        good.write(m.initiation("good-rtr") + m.peer_up(peer) + m.peer_up(v6_peer))
        good.write(_route(peer, "203.0.113.0/24", 64500, 13335))
        await good.drain()

        # the bad router: a well-framed but broken message (dead letter, connection kept),
        # then a header that cannot be right (dead letter, its connection closed)
        bad.write(m.initiation("bad-rtr") + m.peer_up(peer))
        bad.write(m.route_monitoring(peer, m.MARKER + m.u16(300) + b"\x02" + bytes(8)))
        bad.write(_route(peer, "198.51.100.0/24", 64500, 64511))  # still handled
        bad.write(m.bmp(0, b"", length=10**9) + b"garbage" * 50)
        await bad.drain()
        stranger.write(b"GET / HTTP/1.1\r\nHost: station\r\n\r\n")
        await stranger.drain()
        # a router that goes away in the middle of a message
        _, cut = await asyncio.open_connection("127.0.0.1", station.port)
        cut.write(m.initiation("cut-rtr") + m.peer_up(peer)[:50])
        await cut.drain()
        cut.close()

        assert await _closed_by_station(bad_r), "framing lost: the bad router is let go"
        assert await _closed_by_station(stranger_r)
        assert [c.router.name for c in station.connections.values()] == ["good-rtr"]

        # the good router goes on, after the others' garbage
        pdu = m.update(
            attributes=m.origin()
            + m.as_path(64501, 64777)
            + m.mp_reach_v6("2001:db8::1", "2a0b:4e00::/32")
        )
        good.write(m.route_monitoring(v6_peer, pdu))
        good.write(
            _route(m.per_peer("192.0.2.1", 64500, flags=0x40), "203.0.113.0/24", 64500, 13335)
        )
        good.write(m.peer_down(peer, reason=3, data=m.bgp(3, b"\x06\x02")))
        good.write(m.termination())
        await good.drain()
        assert await _closed_by_station(good_r), "a Termination ends the connection"
        assert not station.connections  # each connection was let go before its socket
    finally:
        stop.set()
        await serving
        await publisher.close()

    routers = {r["router"]: r for r in station.routers()}
    assert routers["good-rtr"]["dead_letters"] == 0
    assert routers["good-rtr"]["why_closed"] == "terminated: administratively closed; bye"
    assert routers["bad-rtr"]["dead_letters"] == 2
    assert str(routers["bad-rtr"]["why_closed"]).startswith("framing lost")
    assert routers["127.0.0.1"]["dead_letters"] == 1
    assert routers["cut-rtr"]["why_closed"] == "closed mid-message"

    updates = await _updates(kafka_bootstrap, topic)
    good_ones = {
        (u.kind, u.collector, u.peer_address, u.prefix, u.as_path)
        for u in updates
        if u.collector.startswith("good-rtr")
    }
    assert good_ones == {
        (Kind.PEER_UP, "good-rtr", "192.0.2.1", "", ()),
        (Kind.PEER_UP, "good-rtr", "2001:db8::1", "", ()),
        (Kind.ANNOUNCE, "good-rtr", "192.0.2.1", "203.0.113.0/24", (64500, 13335)),
        (Kind.ANNOUNCE, "good-rtr", "2001:db8::1", "2a0b:4e00::/32", (64501, 64777)),
        (Kind.PEER_UP, "good-rtr/post-policy", "192.0.2.1", "", ()),
        (Kind.ANNOUNCE, "good-rtr/post-policy", "192.0.2.1", "203.0.113.0/24", (64500, 13335)),
        (Kind.PEER_DOWN, "good-rtr", "192.0.2.1", "", ()),
        (Kind.PEER_DOWN, "good-rtr/post-policy", "192.0.2.1", "", ()),
    }
    assert {u.prefix for u in updates if u.collector == "bad-rtr"} == {"", "198.51.100.0/24"}
    assert {u.source for u in updates} == {"bmp"}

    letters = await _letters(kafka_bootstrap, dlq)
    by_code = sorted((d.code, d.source, d.position.split(" ", 1)[1]) for d in letters)
    assert by_code == [
        ("bmp-framing", "bmp", "message 1"),  # the stranger's HTTP request
        ("bmp-framing", "bmp", "message 5"),
        ("bmp-truncated", "bmp", "message 2"),
        ("malformed-bmp", "bmp", "message 3"),
    ]
    cut_letter = next(d for d in letters if d.code == "bmp-truncated")
    assert "short of a" in cut_letter.reason and "router cut-rtr" in cut_letter.reason
    framing = next(d for d in letters if d.code == "bmp-framing" and "bad-rtr" in d.reason)
    assert "length 1000000000" in framing.reason
    assert isinstance(framing.payload, bytes) and b"garbage" in framing.payload


def test_the_cli_station_publishes_and_flushes_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"bmp-cli-{uuid.uuid4().hex[:8]}"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bgp_orchestrator.cli.main",
            "ingest",
            "bmp",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env=_env(kafka_bootstrap, topic, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the station did not listen"
                time.sleep(0.2)
        peer = m.per_peer("192.0.2.1", 64500)
        sock.sendall(
            m.initiation("cli-rtr")
            + m.peer_up(peer)
            + b"".join(_route(peer, f"10.{n}.0.0/16", 64500, 3356) for n in range(50))
        )
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        sock.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "BMP router connected from 127.0.0.1" in output
    assert "cli-rtr" in output
    updates = asyncio.run(_updates(kafka_bootstrap, topic))
    assert {u.prefix for u in updates if u.kind == Kind.ANNOUNCE} == {
        f"10.{n}.0.0/16" for n in range(50)
    }
    assert {u.collector for u in updates} == {"cli-rtr"}


async def test_a_router_flooding_garbage_waits_for_the_broker_the_others_flow(
    kafka_bootstrap: str,
) -> None:
    """5,000 broken messages with at most 100 letters waiting for the broker: every one
    is dead-lettered, in bounded memory, while another router's routes go through."""
    topic = f"bmp-flood-{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}.dlq"
    partitions = await ensure_topics(kafka_bootstrap, topic, dlq, 4)
    publisher = UpdatePublisher(kafka_bootstrap, topic, dlq, partitions, eager=True)
    await publisher.start()
    station = BmpStation(publisher, "127.0.0.1", 0, max_pending=100)
    await station.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(station.run(stop))
    peer = m.per_peer("192.0.2.1", 64500)
    broken = m.route_monitoring(peer, m.MARKER + m.u16(300) + b"\x02" + bytes(8))
    try:
        _, flood = await asyncio.open_connection("127.0.0.1", station.port)
        good_r, good = await asyncio.open_connection("127.0.0.1", station.port)
        flood.write(m.initiation("flood-rtr") + broken * 5000)
        good.write(m.initiation("good-rtr") + m.peer_up(peer))
        good.write(b"".join(_route(peer, f"10.{n}.0.0/16", 64500, 3356) for n in range(100)))
        good.write(m.termination())
        await asyncio.gather(flood.drain(), good.drain())
        assert await _closed_by_station(good_r)
        flooding = next(c for c in station.connections.values() if c.router.name == "flood-rtr")
        deadline = time.monotonic() + 60
        while flooding.dead_letters < 5000:
            assert time.monotonic() < deadline, flooding.dead_letters
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await serving
        await publisher.close()
    assert publisher.stats.dead_letters == {"malformed-bmp": 5000}
    updates = await _updates(kafka_bootstrap, topic)
    assert len({u.prefix for u in updates if u.collector == "good-rtr" and u.prefix}) == 100
