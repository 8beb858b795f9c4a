"""A real router exporting BMP: FRR's bgpd (`-M bmp`, Debian's frr package) in a network
namespace, peered with an ExaBGP router that announces a legitimate route and then a
hijack of a monitored prefix (IPv4), and an IPv6 hijack by a private ASN; FRR streams
its Adj-RIB-In (IPv4 pre- and post-policy, IPv6 pre-policy) to `bgpo ingest bmp`, and
the hijacks must come out of the conflicts API with FRR and its peer as the session."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from bgp_orchestrator.settings import Settings
from tests.conftest import free_port
from tests.integration.test_bgp_sessions import (  # noqa: F401  (fixtures)
    EXABGP_ENV,
    Daemons,
    daemons,
    lab,
    wait_for_hijack,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BGPD = "/usr/lib/frr/bgpd"
_N = os.getpid() % 250
NS, LINK = f"bgpobmp{_N}", f"bgpobmp{_N}h"
HOST, FRR = f"10.205.{_N}.3", f"10.205.{_N}.4"  # ExaBGP and the station; FRR
FRR_AS, EXA_AS = 65010, 200100


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _cleanup() -> None:
    subprocess.run(["ip", "link", "del", LINK], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)


@pytest.fixture
def frr_link() -> Iterator[None]:
    """A network namespace for FRR, linked to the host by a veth pair (needs root)."""
    if not os.access(BGPD, os.X_OK):
        pytest.skip("FRR is not installed (Debian package frr: /usr/lib/frr/bgpd)")
    if not glob.glob("/usr/lib/*/frr/modules/bgpd_bmp.so") + glob.glob(
        "/usr/lib/frr/modules/bgpd_bmp.so"
    ):
        pytest.skip("FRR's BMP module bgpd_bmp.so is missing")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace for FRR needs root and iproute2")
    _cleanup()
    _ip("netns", "add", NS)
    _ip("link", "add", LINK, "type", "veth", "peer", "name", LINK + "p")
    _ip("link", "set", LINK + "p", "netns", NS)
    _ip("addr", "add", f"{HOST}/24", "dev", LINK)
    _ip("link", "set", LINK, "up")
    _ip("netns", "exec", NS, "ip", "addr", "add", f"{FRR}/24", "dev", LINK + "p")
    _ip("netns", "exec", NS, "ip", "link", "set", LINK + "p", "up")
    _ip("netns", "exec", NS, "ip", "link", "set", "lo", "up")
    try:
        yield
    finally:
        _cleanup()


def _station(tmp_path: Path, procs: Daemons, settings: Settings, kafka: str) -> int:
    """`bgpo ingest bmp` on the host side of the link; returns its port."""
    port = free_port()
    env = {
        **os.environ,
        "BGPO_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "BGPO_KAFKA_TOPIC": settings.kafka_topic,
        "BGPO_KAFKA_DLQ_TOPIC": settings.kafka_dlq_topic,
        "BGPO_KAFKA_PARTITIONS": "4",
        "BGPO_DATA_DIR": str(tmp_path),
    }
    bgpo = Path(sys.executable).parent / "bgpo"
    procs.start(
        [str(bgpo), "ingest", "bmp", "--listen", f"{HOST}:{port}", "--allow", f"{FRR}/32"],
        tmp_path / "station.log",
        env,
    )
    return port


def _frr(tmp_path: Path, procs: Daemons, station_port: int) -> None:
    run = tmp_path / "frr"
    run.mkdir()
    conf = run / "bgpd.conf"
    conf.write_text(
        "frr defaults traditional\n"
        "hostname bgpo-frr\n"
        "log stdout informational\n"
        f"router bgp {FRR_AS}\n"
        f" bgp router-id {FRR}\n"
        " no bgp ebgp-requires-policy\n"
        f" neighbor {HOST} remote-as {EXA_AS}\n"
        " address-family ipv4 unicast\n"
        # pre-policy BMP needs the Adj-RIB-In kept (without it FRR sends withdrawals,
        # FRRouting/frr#10240)
        f"  neighbor {HOST} soft-reconfiguration inbound\n"
        " exit-address-family\n"
        " address-family ipv6 unicast\n"
        f"  neighbor {HOST} activate\n"
        f"  neighbor {HOST} soft-reconfiguration inbound\n"
        " exit-address-family\n"
        " bmp targets bgpo\n"
        "  bmp monitor ipv4 unicast pre-policy\n"
        "  bmp monitor ipv4 unicast post-policy\n"
        "  bmp monitor ipv6 unicast pre-policy\n"
        f"  bmp connect {HOST} port {station_port} min-retry 200 max-retry 2000\n"
        " exit\n"
    )
    procs.start(
        [
            "ip",
            "netns",
            "exec",
            NS,
            BGPD,
            "-Z",  # no zebra: nothing to install in a kernel
            "-S",  # as root, no capabilities dance
            "-M",
            "bmp",
            "-f",
            str(conf),
            "-i",
            str(run / "bgpd.pid"),
            "--vty_socket",
            str(run),
            "-P",
            "0",  # no vty port
        ],
        tmp_path / "bgpd.log",
        dict(os.environ),
    )


def _exabgp(tmp_path: Path, procs: Daemons) -> None:
    announcer = tmp_path / "announcer.py"
    announcer.write_text(
        "import sys, time\n"
        "def send(c):\n    sys.stdout.write(c + '\\n'); sys.stdout.flush()\n"
        "time.sleep(2)\n"
        "send('announce route 45.65.12.0/24 next-hop self as-path [ 200100 3356 200200 ]')\n"
        "send('announce route 198.51.100.0/24 next-hop self as-path [ 200100 4200000001 ]')\n"
        "send('announce route 2a0b:4e00::/32 next-hop 2001:db8::2 as-path [ 200100 6939 64777 ]')\n"
        "time.sleep(3)\n"
        "send('announce route 45.65.12.0/24 next-hop self as-path [ 200100 174 13335 ]')\n"
        "while True:\n    time.sleep(60)\n"
    )
    conf = tmp_path / "exabgp.conf"
    conf.write_text(
        f"process announcer {{ run {sys.executable} {announcer}; encoder json; }}\n"
        f"neighbor {FRR} {{\n"
        f"    router-id {HOST}; local-address {HOST}; local-as {EXA_AS}; peer-as {FRR_AS};\n"
        "    connect 179;\n"
        "    family { ipv4 unicast; ipv6 unicast; }\n"
        "    api { processes [ announcer ]; }\n}\n"
    )
    procs.start(
        [str(Path(sys.executable).parent / "exabgp"), "server", str(conf)],
        tmp_path / "exabgp.log",
        {**os.environ, **EXABGP_ENV},
    )


async def test_frr_bmp_hijack_reaches_the_api(
    frr_link: None,
    lab: tuple[Settings, httpx.AsyncClient],  # noqa: F811
    kafka_bootstrap: str,
    tmp_path: Path,
    daemons: Daemons,  # noqa: F811
) -> None:
    settings, client = lab
    port = _station(tmp_path, daemons, settings, kafka_bootstrap)
    _frr(tmp_path, daemons, port)
    _exabgp(tmp_path, daemons)
    try:
        hijack = await wait_for_hijack(client, 13335)
    except AssertionError:
        for name in ("station.log", "bgpd.log", "exabgp.log"):
            print(f"--- {name}\n" + (tmp_path / name).read_text(errors="replace")[-4000:])
        raise
    assert hijack["prefix"] == "45.65.12.0/24"
    # the path as ExaBGP sent it: FRR 8.4's own AS in front is removed by the station
    assert hijack["as_path"] == "200100 174 13335"
    # the router (its sysName) and its peer are the session: pre-policy, then post-policy
    pre = f"bgpo-frr|{HOST}"
    deadline = time.monotonic() + 30
    peers = cast(list[str], hijack["peers"])
    while pre not in peers:
        assert time.monotonic() < deadline, hijack
        await asyncio.sleep(0.5)
        peers = cast(list[str], (await wait_for_hijack(client, 13335))["peers"])
    assert set(peers) <= {pre, f"bgpo-frr/post-policy|{HOST}"}
    # IPv6 over the same session: a hijack of the monitored /32 by a private ASN
    deadline = time.monotonic() + 30
    while True:
        r = await client.get(
            "/api/v1/conflicts?prefix=2a0b:4e00::/32&prefix_match=exact",
            headers={"X-Tenant": "lab"},
        )
        found = {(c["type"], tuple(c["peers"])) for c in r.json()["items"]}
        if {t for t, _ in found} >= {"exact-prefix-hijack", "bogon-asn"}:
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.5)
    assert all(peers == (pre,) for _, peers in found), found
    log = (tmp_path / "station.log").read_text()
    assert f"BMP router connected from {FRR}" in log
    assert f"peer {HOST} AS{EXA_AS} up" in log
    assert "dead-lettered" not in log
