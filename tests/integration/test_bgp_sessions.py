"""Real BGP sessions on loopback: a router announces a hijack of a monitored prefix to an
ExaBGP collector whose API process is `bgpo ingest exabgp`; the conflict must appear
through the API. The router is ExaBGP, then BIRD 2 (a second implementation)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.detection.checkpoint import MemoryCheckpoints
from bgp_orchestrator.detection.worker import DetectionWorker
from bgp_orchestrator.ingest.publisher import ensure_topics
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.conftest import free_port
from tests.integration.test_detection_flow import _settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

COLLECTOR, EXA_ROUTER = "127.0.0.3", "127.0.0.2"
# BIRD refuses host-scope (127/8) neighbours and local addresses: it runs in a network
# namespace of its own, linked to the collector by a veth pair.
BIRD_NS, BIRD_LINK, BIRD_COLLECTOR, BIRD_ROUTER = (
    "bgpotest",
    "bgpotest0",
    "10.203.0.3",
    "10.203.0.4",
)
EXABGP_ENV = {
    "exabgp_daemon_user": "root",
    "exabgp.daemon.user": "root",
    "exabgp_daemon_drop": "false",
    "exabgp_api_ack": "false",
    "exabgp.api.ack": "false",
    "exabgp_log_destination": "stderr",
}


class Daemons:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    d = Daemons()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
async def lab(
    db: Database, database_url: str, kafka_bootstrap: str, tmp_path: Path, clean: None
) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    """Tenant 'lab' (AS200200, 45.65.12.0/24 and 2a0b:4e00::/32), a detector and the API."""
    settings = _settings(database_url, tmp_path)
    await ensure_topics(kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 4)
    app = create_app(settings, database=db)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    h = {"X-Tenant": "lab"}
    assert (
        await client.post(
            "/api/v1/tenants",
            json={"slug": "lab", "name": "Lab"},
            headers={"X-Role": "platform-admin"},
        )
    ).status_code == 201
    assert (await client.post("/api/v1/asns", json={"asn": 200200}, headers=h)).status_code == 201
    for prefix in ("45.65.12.0/24", "2a0b:4e00::/32"):
        r = await client.post(
            "/api/v1/prefixes", json={"prefix": prefix, "origin_asns": [200200]}, headers=h
        )
        assert r.status_code == 201
    worker = DetectionWorker(
        settings, db, MemoryCheckpoints(), kafka_bootstrap, name="lab", reference_interval_s=0.5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield settings, client
    finally:
        stop.set()
        await task
        await client.aclose()


def collector(
    tmp_path: Path,
    daemons: Daemons,
    settings: Settings,
    kafka: str,
    routers: dict[str, int],
    address: str = COLLECTOR,
    connect: int | None = None,
) -> int:
    """An ExaBGP collector whose API process is `bgpo ingest exabgp`.

    Passive on a port of its own (returned), or, with ``connect``, opening the
    session itself to the routers' port.
    """
    port = free_port()
    session = f"connect {connect};" if connect else f"listen {port}; passive true;"
    bgpo = Path(sys.executable).parent / "bgpo"
    neighbors = "\n".join(
        f"""neighbor {peer} {{
    router-id 10.0.0.3; local-address {address}; local-as 65000; peer-as {asn};
    {session}
    family {{ ipv4 unicast; ipv6 unicast; }}
    api {{ processes [ bgpo ]; receive {{ parsed; update; }} neighbor-changes; }}
}}"""
        for peer, asn in routers.items()
    )
    conf = tmp_path / "collector.conf"
    conf.write_text(
        f"process bgpo {{ run {bgpo} ingest exabgp --collector lab; encoder json; }}\n{neighbors}\n"
    )
    env = {
        **os.environ,
        **EXABGP_ENV,
        "BGPO_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "BGPO_KAFKA_TOPIC": settings.kafka_topic,
        "BGPO_KAFKA_DLQ_TOPIC": settings.kafka_dlq_topic,
        "BGPO_KAFKA_PARTITIONS": "4",
        "BGPO_DATA_DIR": str(tmp_path),
    }
    daemons.start(
        [str(Path(sys.executable).parent / "exabgp"), "server", str(conf)],
        tmp_path / "collector.log",
        env,
    )
    return port


async def wait_for_hijack(
    client: httpx.AsyncClient, origin: int, timeout_s: float = 90
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = await client.get(
            "/api/v1/conflicts?type=exact-prefix-hijack", headers={"X-Tenant": "lab"}
        )
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            if item["origin_asn"] == origin:
                return dict(item)
        await asyncio.sleep(0.5)
    raise AssertionError(f"no hijack by AS{origin} reported within {timeout_s}s")


async def test_exabgp_router_hijack_reaches_the_api(
    lab: tuple[Settings, httpx.AsyncClient],
    kafka_bootstrap: str,
    tmp_path: Path,
    daemons: Daemons,
) -> None:
    settings, client = lab
    port = collector(tmp_path, daemons, settings, kafka_bootstrap, {EXA_ROUTER: 200100})
    announcer = tmp_path / "announcer.py"
    announcer.write_text(
        "import sys, time\n"
        "def send(c):\n    sys.stdout.write(c + '\\n'); sys.stdout.flush()\n"
        "time.sleep(2)\n"
        "send('announce route 45.65.12.0/24 next-hop self as-path [ 200100 3356 200200 ]')\n"
        "v6 = 'announce route 2a0b:4e00::/32 next-hop 2001:db8::2'\n"
        "send(v6 + ' as-path [ 200100 3356 200200 ]')\n"
        "time.sleep(2)\n"
        "send(v6 + ' as-path [ 200100 6939 64777 ]')\n"
        "send('announce route 45.65.12.0/24 next-hop self as-path [ 200100 174 13335 ]')\n"
        "while True:\n    time.sleep(60)\n"
    )
    conf = tmp_path / "router.conf"
    conf.write_text(
        f"process announcer {{ run {sys.executable} {announcer}; encoder json; }}\n"
        f"neighbor {COLLECTOR} {{\n"
        f"    router-id 10.0.0.2; local-address {EXA_ROUTER}; local-as 200100; peer-as 65000;\n"
        f"    connect {port};\n"
        "    family { ipv4 unicast; ipv6 unicast; }\n"
        "    api { processes [ announcer ]; }\n}\n"
    )
    daemons.start(
        [str(Path(sys.executable).parent / "exabgp"), "server", str(conf)],
        tmp_path / "router.log",
        {**os.environ, **EXABGP_ENV},
    )
    hijack = await wait_for_hijack(client, 13335)
    assert hijack["prefix"] == "45.65.12.0/24"
    assert hijack["as_path"] == "200100 174 13335"
    assert hijack["peers"] == [f"lab|{EXA_ROUTER}"]
    # the IPv6 announcement with a private origin is an IPv6 hijack and a bogon ASN
    r = await client.get(
        "/api/v1/conflicts?prefix=2a0b:4e00::/32&prefix_match=exact", headers={"X-Tenant": "lab"}
    )
    deadline = time.monotonic() + 30
    while {c["type"] for c in r.json()["items"]} < {"exact-prefix-hijack", "bogon-asn"}:
        assert time.monotonic() < deadline, r.json()
        await asyncio.sleep(0.5)
        r = await client.get(
            "/api/v1/conflicts?prefix=2a0b:4e00::/32&prefix_match=exact",
            headers={"X-Tenant": "lab"},
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def bird_link() -> Iterator[None]:
    """A network namespace for BIRD, linked to the collector by a veth pair (needs root)."""
    if shutil.which("bird") is None:
        pytest.skip("BIRD 2 is not installed (Debian package bird2)")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace for BIRD needs root and iproute2")
    subprocess.run(["ip", "link", "del", BIRD_LINK], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", BIRD_NS], capture_output=True, check=False)
    _ip("netns", "add", BIRD_NS)
    _ip("link", "add", BIRD_LINK, "type", "veth", "peer", "name", BIRD_LINK + "p")
    _ip("link", "set", BIRD_LINK + "p", "netns", BIRD_NS)
    _ip("addr", "add", f"{BIRD_COLLECTOR}/24", "dev", BIRD_LINK)
    _ip("link", "set", BIRD_LINK, "up")
    inside = ("netns", "exec", BIRD_NS, "ip")
    _ip(*inside, "addr", "add", f"{BIRD_ROUTER}/24", "dev", BIRD_LINK + "p")
    _ip("netns", "exec", BIRD_NS, "ip", "link", "set", BIRD_LINK + "p", "up")
    _ip("netns", "exec", BIRD_NS, "ip", "link", "set", "lo", "up")
    try:
        yield
    finally:
        subprocess.run(["ip", "link", "del", BIRD_LINK], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", BIRD_NS], capture_output=True, check=False)


async def test_bird_router_hijack_reaches_the_api(
    bird_link: None,
    lab: tuple[Settings, httpx.AsyncClient],
    kafka_bootstrap: str,
    tmp_path: Path,
    daemons: Daemons,
) -> None:
    settings, client = lab
    bird_port = free_port()
    collector(
        tmp_path,
        daemons,
        settings,
        kafka_bootstrap,
        {BIRD_ROUTER: 200300},
        address=BIRD_COLLECTOR,
        connect=bird_port,
    )
    conf = tmp_path / "bird.conf"
    conf.write_text(
        "log stderr all;\n"
        "router id 10.0.0.4;\n"
        "protocol device {}\n"
        "protocol static hijack { ipv4; route 45.65.12.0/24 blackhole; }\n"
        "protocol bgp collector {\n"
        f"  local {BIRD_ROUTER} port {bird_port} as 200300;\n"
        f"  neighbor {BIRD_COLLECTOR} as 65000;\n"
        "  passive on;  # the collector opens the session\n"
        "  ipv4 { import none; export filter { bgp_path.prepend(13335); accept; }; };\n"
        "}\n"
    )
    daemons.start(
        [
            "ip",
            "netns",
            "exec",
            BIRD_NS,
            "bird",
            "-f",
            "-c",
            str(conf),
            "-s",
            str(tmp_path / "bird.ctl"),
            "-P",
            str(tmp_path / "bird.pid"),
        ],
        tmp_path / "bird.log",
        dict(os.environ),
    )
    hijack = await wait_for_hijack(client, 13335)
    assert hijack["as_path"] == "200300 13335"
    assert hijack["peers"] == [f"lab|{BIRD_ROUTER}"]
