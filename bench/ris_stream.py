"""A seeded RIS Live JSONL stream with labelled hijacks, and a storm variant.

    python bench/ris_stream.py /tmp/ris.jsonl                    # 1,000,000 messages
    python bench/ris_stream.py /tmp/ris.jsonl --messages 100000
    python bench/ris_stream.py /tmp/storm.jsonl --storm --storm-pairs 200000

Each line is one message exactly as RIS Live sends it
(``{"type":"ris_message","data":{"timestamp":..,"peer":..,"peer_asn":"..","id":..,
"host":"rrc00","type":"UPDATE","path":[..],"community":[[a,b],..],"origin":"igp",
"announcements":[{"next_hop":..,"prefixes":[..]}],"withdrawals":[..]}}``). Beside the
file, ``<name>.labels.json`` lists the tenants (their ASNs and monitored prefixes, so a
benchmark can create them through the API) and every planted hijack with the
conflict it must raise: type, tenant, announced prefix, hijacking origin, detail key.

The world is drawn from the seed, independently of the project's simulator:

- 80,000 peers (IPv4 and IPv6) on 24 RIS collectors (rrc00, rrc01, rrc03-07,
  rrc10-26), peer ASNs from a pool of 12,000 networks; some peers far noisier
  than others;
- a table of 1,000,000 unowned prefixes, about the size of today's default-free zone
  (80 % IPv4, /24s the most common; IPv6 /48s and /32s), from 60,000 origin ASNs with
  a heavy-tailed prefix count, 4 % of the prefixes announced by two or three origins
  (anycast and multi-homing: MOAS); some prefixes churn far more than others;
- 5 tenants owning 1,000 monitored prefixes (IPv4 and IPv6, non-overlapping, some with
  a max length that allows more-specifics, which their own origins then announce);

and the stream from it: announcements grouped per origin (1 to 13 prefixes a
message, 2.4 updates a message on average), paths of 2 to 7 hops through tier-1 and
transit networks with prepending, an AS_SET now and then, private ASNs inside some
paths, path changes (every message draws a new path), withdrawals of what a peer
announced earlier, peers going down and coming back with a table burst
(RIS_PEER_STATE), a few OPEN/KEEPALIVE/NOTIFICATION messages, a few bogon prefixes,
and a few malformed lines (truncated JSON, ris_error, a missing peer ASN, an
impossible prefix). Hijacks of monitored prefixes (exact prefix by another origin,
or a more-specific by another origin) are spread through the stream, each seen by 1
to 30 peers over the next few thousand messages and withdrawn later; the LAST line
of the file is the first and only message of one more hijack, so a benchmark that
waits for its conflict has waited for the whole file.

``--storm`` writes a second kind of file: the victims' table, then normal traffic,
then within two minutes of recorded time one network originating ``--storm-pairs``
unowned prefixes it does not hold (as in a large leak or MOAS event: the 2015 Telekom
Malaysia leak touched ~179,000 prefixes), each seen by one to four peers, with
hijacks of monitored prefixes planted during it and one as the last line.
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bgp_orchestrator.bgp.prefix import Net, format_net, truncate
from bgp_orchestrator.reference.bogons import bogon_prefix

COLLECTORS = ["rrc00", "rrc01"] + [f"rrc{n:02d}" for n in (3, 4, 5, 6, 7, *range(10, 27))]
TIER1 = [3356, 1299, 174, 2914, 3257, 6762, 6939, 6453, 3491, 1273, 5511, 701, 7018, 6461, 6830]
PRIVATE_ASNS = (64512, 65534, 4_200_000_000, 4_294_967_294)
TABLE = 1_000_000  # unowned prefixes: about the default-free zone (IPv4 and IPv6)
BASE_TIME = 1_711_929_600.0  # 2024-04-01 00:00 UTC
RECORDED_RATE = 400.0  # messages per second of recorded time (the timestamps)
V4_LENGTHS = {24: 60, 23: 8, 22: 10, 21: 5, 20: 5, 19: 4, 18: 2, 17: 2, 16: 3, 15: 1}
V6_LENGTHS = {48: 45, 32: 20, 44: 8, 40: 7, 36: 5, 46: 5, 47: 3, 29: 4, 33: 3}
OWNED_V4_LENGTHS = {24: 8, 23: 3, 22: 4, 21: 2, 20: 2, 19: 1}
OWNED_V6_LENGTHS = {48: 4, 44: 2, 40: 2, 36: 1, 32: 1}
TENANT_SIZES = (0.35, 0.25, 0.2, 0.12, 0.08)
HIJACK_TYPES = ("exact-prefix-hijack", "sub-prefix-hijack")
# where the RIRs' IPv6 allocations are: 2001::/16 (minus its bogons), 2400::/12 (APNIC),
# 2600::/12 (ARIN), 2800::/12 (LACNIC), 2a00::/12 (RIPE NCC), 2c00::/12 (AFRINIC)
V6_BLOCKS = ((0x2001, 16), (0x2400, 12), (0x2600, 12), (0x2800, 12), (0x2A00, 12), (0x2C00, 12))
# prefixes in one announcement (the same origin and path): mostly one, now and then many
GROUP_SIZES = (1, 1, 1, 1, 1, 2, 2, 3, 5, 13)


# --- the world ----------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    address: str
    asn: int
    host: str
    afi: int


@dataclass
class Owned:
    tenant: str
    prefix: str
    net: Net
    origin_asns: list[int]
    max_length: int


@dataclass
class TenantSpec:
    slug: str
    name: str
    asns: list[int]
    prefixes: list[Owned] = field(default_factory=list)


@dataclass
class Hijack:
    """One planted hijack and the conflict it must raise."""

    type: str
    tenant: str
    prefix: str
    origin_asn: int
    detail_key: str
    monitored_prefix: str
    line: int = 0  # 1-based line of its first message
    timestamp: float = 0.0
    peers: int = 0

    def expected(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "tenant": self.tenant,
            "prefix": self.prefix,
            "origin_asn": self.origin_asn,
            "detail_key": self.detail_key,
        }


def _weighted(rng: random.Random, table: dict[int, int]) -> int:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _asn_pool(rng: random.Random, count: int, taken: set[int]) -> list[int]:
    """Public ASNs (16-bit and 32-bit, never reserved or private), not in ``taken``."""
    out: list[int] = []
    while len(out) < count:
        asn = rng.randint(1, 64495) if rng.random() < 0.6 else rng.randint(131072, 399999)
        if asn != 23456 and asn not in taken:
            taken.add(asn)
            out.append(asn)
    return out


def _random_net(rng: random.Random, afi: int, lengths: dict[int, int]) -> Net:
    length = _weighted(rng, lengths)
    if afi == 4:
        value = rng.randint(1 << 24, 223 << 24)
        return truncate(Net(4, value, 32), length)
    top, bits = V6_BLOCKS[int(rng.random() * len(V6_BLOCKS))]
    value = (top << 112) | (rng.getrandbits(128 - bits) & ((1 << (128 - bits)) - 1))
    return truncate(Net(6, value, 128), max(length, bits))


class World:
    """Peers, networks, the unowned table and the tenants, all drawn from one seed."""

    def __init__(
        self, seed: int, peers: int = 80_000, table: int = TABLE, monitored: int = 1000
    ) -> None:
        rng = random.Random(seed)
        self.rng = rng
        taken = set(TIER1)
        self.transit = _asn_pool(rng, 2000, taken)
        self.origins = _asn_pool(rng, 60_000, taken)
        self.tenants = self._tenants(rng, monitored, taken)
        self.owned = [p for t in self.tenants for p in t.prefixes]
        self._owned_nets = {(p.net.afi, p.net.length, p.net.value): p for p in self.owned}
        self._owned_lengths = sorted({p.net.length for p in self.owned})
        self.peers = self._peers(rng, peers)
        self.peers_by_afi = {afi: [p for p in self.peers if p.afi == afi] for afi in (4, 6)}
        self.table = self._table(rng, table)
        self.by_origin: dict[tuple[int, int], list[int]] = {}
        for index, (net, origins) in enumerate(self.table):
            for origin in origins:
                self.by_origin.setdefault((origin, net.afi), []).append(index)

    def _tenants(self, rng: random.Random, monitored: int, taken: set[int]) -> list[TenantSpec]:
        names = ["northwind", "contoso", "fabrikam", "tailspin", "wingtip"]
        tenants = []
        for slug in names[: len(TENANT_SIZES)]:
            asns = _asn_pool(rng, rng.randint(1, 4), taken)
            tenants.append(TenantSpec(f"{slug}-net", f"{slug.title()} Networks", asns))
        counts = [round(monitored * s) for s in TENANT_SIZES]
        counts[0] += monitored - sum(counts)
        used: set[int] = set()
        for tenant, count in zip(tenants, counts, strict=True):
            blocks: dict[int, list[list[int]]] = {4: [], 6: []}  # the tenant's own blocks
            for i in range(count):
                afi = 4 if i % 5 else 6  # a fifth of them IPv6
                net = self._allocate(rng, afi, blocks, used)
                longest = 24 if afi == 4 else 48
                max_length = net.length
                if net.length < longest and rng.random() < 0.4:
                    max_length = longest
                origins = rng.sample(tenant.asns, min(len(tenant.asns), rng.choice((1, 1, 2))))
                tenant.prefixes.append(
                    Owned(tenant.slug, format_net(net), net, sorted(origins), max_length)
                )
        return tenants

    @staticmethod
    def _allocate(
        rng: random.Random, afi: int, blocks: dict[int, list[list[int]]], used: set[int]
    ) -> Net:
        """The next aligned prefix in the tenants' address blocks (/16s and /32s)."""
        width, block_len = (32, 16) if afi == 4 else (128, 32)
        length = _weighted(rng, OWNED_V4_LENGTHS if afi == 4 else OWNED_V6_LENGTHS)
        size = 1 << (width - length)
        while True:
            if blocks[afi]:
                block = blocks[afi][-1]  # [first address after the block, next free address]
                aligned = (block[1] + size - 1) // size * size
                if aligned + size <= block[0]:
                    block[1] = aligned + size
                    return Net(afi, aligned, length)
            new = _random_net(rng, afi, {block_len: 1})
            if new.value not in used and bogon_prefix(new) is None:
                used.add(new.value)
                blocks[afi].append([new.value + (1 << (width - block_len)), new.value])

    def owned_covering(self, net: Net) -> Owned | None:
        for length in self._owned_lengths:
            if length > net.length:
                break
            found = self._owned_nets.get((net.afi, length, truncate(net, length).value))
            if found is not None:
                return found
        return None

    def _peers(self, rng: random.Random, count: int) -> list[Peer]:
        asns = rng.sample(self.transit, 1500) + rng.sample(self.origins, 10_500)
        seen: set[str] = set()
        peers = []
        while len(peers) < count:
            afi = 4 if rng.random() < 0.65 else 6
            if afi == 4:
                address = format_net(_random_net(rng, 4, {32: 1})).split("/")[0]
            else:
                address = f"2001:7f8:{rng.randint(1, 0xFFF):x}::{rng.randint(1, 0xFFFF):x}:1"
            if address in seen:
                continue
            seen.add(address)
            asn = asns[int(len(asns) * rng.random() ** 1.5)]
            peers.append(Peer(address, asn, COLLECTORS[rng.randrange(len(COLLECTORS))], afi))
        return peers

    def _table(self, rng: random.Random, size: int) -> list[tuple[Net, tuple[int, ...]]]:
        table: list[tuple[Net, tuple[int, ...]]] = []
        seen: set[Net] = set()
        while len(table) < size:
            afi = 4 if rng.random() < 0.8 else 6
            net = _random_net(rng, afi, V4_LENGTHS if afi == 4 else V6_LENGTHS)
            if net in seen or bogon_prefix(net) is not None or self.owned_covering(net):
                continue
            seen.add(net)
            origin = self.origins[int(len(self.origins) * rng.random() ** 2.5)]
            origins: tuple[int, ...] = (origin,)
            if rng.random() < 0.04:  # MOAS: anycast, multi-homing, a transit's aggregate
                others = rng.sample(self.origins, rng.choice((1, 1, 2)))
                origins = (origin, *(o for o in others if o != origin))
            table.append((net, origins))
        return table

    def labels(self) -> dict[str, Any]:
        return {
            "tenants": [
                {
                    "slug": t.slug,
                    "name": t.name,
                    "asns": t.asns,
                    "prefixes": [
                        {
                            "prefix": p.prefix,
                            "origin_asns": p.origin_asns,
                            "max_length": p.max_length,
                        }
                        for p in t.prefixes
                    ],
                }
                for t in self.tenants
            ],
            "peers": len(self.peers),
            "collectors": COLLECTORS,
            "table_prefixes": len(self.table),
            "moas_prefixes": sum(1 for _, o in self.table if len(o) > 1),
        }


# --- messages -----------------------------------------------------------------------


class Writer:
    """Builds RIS Live lines with paths, communities and timestamps, and counts them."""

    def __init__(self, world: World, rng: random.Random, start: float = BASE_TIME) -> None:
        self.world = world
        self.rng = rng
        self.clock = start
        self.rate = RECORDED_RATE  # messages per second of recorded time
        self.sequence = 0
        self.kinds: dict[str, int] = {}

    def tick(self) -> float:
        self.clock += self.rng.expovariate(self.rate)
        return round(self.clock, 2)

    def peer(self, afi: int) -> Peer:
        peers = self.world.peers_by_afi[afi]
        return peers[int(len(peers) * self.rng.random() ** 2)]  # some peers far noisier

    def path(
        self,
        peer: Peer,
        origin: int | tuple[int, ...],
        private: bool = True,
        upstream: int | None = None,
    ) -> list[Any]:
        """peer, maybe a tier-1, 0-3 transit networks (``upstream`` last), the origin
        (prepended now and then, or followed by an AS_SET when ``origin`` is a tuple)."""
        rng = self.rng
        hops: list[Any] = [peer.asn]
        if rng.random() < 0.6:
            hops.append(rng.choice(TIER1))
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            hops.append(self.world.transit[int(len(self.world.transit) * rng.random() ** 2)])
        if upstream is not None:
            hops.append(upstream)
        if private and rng.random() < 0.003:  # a private ASN leaked inside the path
            low, high = (PRIVATE_ASNS[0], PRIVATE_ASNS[1])
            if rng.random() < 0.3:
                low, high = (PRIVATE_ASNS[2], PRIVATE_ASNS[3])
            hops.insert(rng.randint(1, len(hops)), rng.randint(low, high))
        last = origin[0] if isinstance(origin, tuple) else origin
        hops = [h for i, h in enumerate(hops) if h != last and h not in hops[:i]]
        if rng.random() < 0.03 and len(hops) > 1:
            transit = rng.randrange(1, len(hops))
            hops[transit:transit] = [hops[transit]] * rng.randint(1, 3)
        if isinstance(origin, tuple):  # an aggregate: the aggregator, then an AS_SET
            hops.append(origin[0])
            hops.append(sorted(set(origin[1:])))
        else:
            hops.extend([origin] * (1 + (rng.randint(1, 4) if rng.random() < 0.08 else 0)))
        return hops

    def communities(self, path: list[Any]) -> list[list[int]]:
        rng = self.rng
        small = [a for a in path if isinstance(a, int) and 0 < a < 65536]
        if not small:
            return []
        return [[rng.choice(small), rng.randint(1, 65535)] for _ in range(rng.choice((0, 1, 2, 4)))]

    def next_hop(self, peer: Peer) -> str:
        if peer.afi == 6 and self.rng.random() < 0.2:
            return f"{peer.address},fe80::{self.rng.randint(1, 0xFFFF):x}"
        return peer.address

    def _data(self, peer: Peer, kind: str) -> dict[str, Any]:
        self.sequence += 1
        ts = self.tick()
        return {
            "timestamp": ts,
            "peer": peer.address,
            "peer_asn": str(peer.asn),
            "id": f"{peer.address}-{ts:.2f}-{self.sequence}",
            "host": peer.host,
            "type": kind,
        }

    def update(
        self,
        peer: Peer,
        path: list[Any],
        prefixes: list[str],
        withdrawals: list[str] | None = None,
        kind: str = "announce",
    ) -> bytes:
        data = self._data(peer, "UPDATE")
        data["path"] = path
        data["community"] = self.communities(path) if path else []
        if prefixes:
            origin = self.rng.random()
            data["origin"] = "igp" if origin < 0.9 else ("incomplete" if origin < 0.99 else "egp")
            data["announcements"] = [{"next_hop": self.next_hop(peer), "prefixes": prefixes}]
        if withdrawals:
            data["withdrawals"] = withdrawals
        return self.line(data, kind)

    def peer_state(self, peer: Peer, state: str) -> bytes:
        data = self._data(peer, "RIS_PEER_STATE")
        data["state"] = state
        return self.line(data, f"peer-{state}")

    def session_message(self, peer: Peer) -> bytes:
        kind = self.rng.choice(("KEEPALIVE", "KEEPALIVE", "OPEN", "NOTIFICATION"))
        data = self._data(peer, kind)
        if kind == "OPEN":
            data |= {"direction": "received", "version": 4, "asn": peer.asn, "hold_time": 180}
        elif kind == "NOTIFICATION":
            data["notification"] = {"code": 6, "subcode": 4, "data": ""}
        return self.line(data, kind.lower())

    def line(self, data: dict[str, Any], kind: str) -> bytes:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return orjson.dumps({"type": "ris_message", "data": data})

    def malformed(self, peer: Peer) -> bytes:
        rng = self.rng
        variant = rng.randrange(5)
        self.kinds["malformed"] = self.kinds.get("malformed", 0) + 1
        if variant == 0:  # truncated in transit
            whole = orjson.dumps({"type": "ris_message", "data": self._data(peer, "UPDATE")})
            return whole[: len(whole) // 2]
        if variant == 1:
            return orjson.dumps({"type": "ris_error", "data": {"message": "subscription lost"}})
        data = self._data(peer, "UPDATE")
        if variant == 2:
            del data["peer_asn"]
        elif variant == 3:
            data |= {"path": [peer.asn, 3356], "announcements": [{"prefixes": ["300.1.0.0/16"]}]}
        else:
            data |= {"type": "RIS_PEER_STATE", "state": "flapping"}
        return orjson.dumps({"type": "ris_message", "data": data})


# --- the background -----------------------------------------------------------------


class Background:
    """Ordinary traffic: announcements grouped per origin, path changes, withdrawals,
    peer resets with table bursts, session messages, bogons and malformed lines."""

    def __init__(self, world: World, writer: Writer, owned_share: float = 0.01) -> None:
        self.world = world
        self.w = writer
        self.rng = writer.rng
        self.owned_share = owned_share
        self.recent: list[tuple[Peer, list[str]]] = []  # announcements a peer may withdraw
        self.burst: list[bytes] = []
        self.down: list[tuple[int, Peer]] = []  # (messages until it comes back, peer)

    def next(self) -> bytes:
        if self.burst:
            return self.burst.pop()
        rng = self.rng
        r = rng.random()
        if self.down and self.down[0][0] <= self.w.sequence:
            _, peer = heapq.heappop(self.down)
            self.burst = [self.announce(peer) for _ in range(rng.randint(50, 300))]
            return self.w.peer_state(peer, "connected")
        if r < 0.00005:
            peer = self.w.peer(4 if rng.random() < 0.65 else 6)
            heapq.heappush(self.down, (self.w.sequence + rng.randint(500, 5000), peer))
            return self.w.peer_state(peer, "down")
        if r < 0.0002:
            return self.w.session_message(self.w.peer(4))
        if r < 0.00024:
            return self.w.malformed(self.w.peer(4))
        if r < 0.00026:
            return self.bogon()
        if r < 0.13 and self.recent:
            return self.withdraw()
        return self.announce()

    def announce(self, peer: Peer | None = None) -> bytes:
        rng = self.rng
        if rng.random() < self.owned_share:
            return self.owned(peer)
        table = self.world.table
        net, origins = table[int(len(table) * rng.random() ** 3)]  # some prefixes churn far more
        origin = origins[rng.randrange(len(origins))]
        group = self.world.by_origin[(origin, net.afi)]
        size = min(len(group), rng.choice(GROUP_SIZES))
        prefixes = [format_net(table[i][0]) for i in rng.sample(group, size)]
        peer = peer if peer is not None and peer.afi == net.afi else self.w.peer(net.afi)
        path_origin: int | tuple[int, ...] = origin
        if rng.random() < 0.002:
            path_origin = (origin, *rng.sample(self.world.origins, 2))
        withdrawals = None
        if self.recent and rng.random() < 0.05:  # withdraws some routes in the same message
            other, earlier = self.recent[rng.randrange(len(self.recent))]
            if other.afi == peer.afi:
                peer, withdrawals = other, earlier[:2]
        self._remember(peer, prefixes)
        return self.w.update(peer, self.w.path(peer, path_origin), prefixes, withdrawals)

    def owned(self, peer: Peer | None = None) -> bytes:
        """A tenant's prefix from an authorised origin, sometimes a more-specific it allows."""
        rng = self.rng
        owned = self.world.owned[rng.randrange(len(self.world.owned))]
        peer = (
            peer if peer is not None and peer.afi == owned.net.afi else self.w.peer(owned.net.afi)
        )
        prefix = owned.prefix
        if owned.max_length > owned.net.length and rng.random() < 0.2:
            width = 32 if owned.net.afi == 4 else 128
            length = rng.randint(owned.net.length + 1, owned.max_length)
            offset = rng.randrange(1 << (length - owned.net.length)) << (width - length)
            prefix = format_net(Net(owned.net.afi, owned.net.value + offset, length))
        origin = rng.choice(owned.origin_asns)
        self._remember(peer, [prefix])
        return self.w.update(peer, self.w.path(peer, origin, private=False), [prefix])

    def withdraw(self) -> bytes:
        peer, prefixes = self.recent[self.rng.randrange(len(self.recent))]
        count = self.rng.randint(1, len(prefixes))
        return self.w.update(peer, [], [], prefixes[:count], kind="withdraw")

    def _remember(self, peer: Peer, prefixes: list[str]) -> None:
        if len(self.recent) < 200_000:
            self.recent.append((peer, prefixes))
        else:
            self.recent[self.rng.randrange(len(self.recent))] = (peer, prefixes)

    def bogon(self) -> bytes:
        rng = self.rng
        prefix = rng.choice(("10.20.0.0/16", "192.168.1.0/24", "172.16.0.0/12", "2001:db8::/32"))
        peer = self.w.peer(6 if ":" in prefix else 4)
        return self.w.update(peer, self.w.path(peer, rng.choice(self.world.origins)), [prefix])


# --- hijacks ------------------------------------------------------------------------


def hijack_plan(world: World, rng: random.Random, count: int) -> list[tuple[Owned, str]]:
    """Distinct victims, half of them (those with room for a more-specific) sub-prefix."""
    roomy = [p for p in world.owned if p.net.length < (24 if p.net.afi == 4 else 48)]
    subs = rng.sample(roomy, min(len(roomy), count // 2))
    chosen = {id(p) for p in subs}
    exact = rng.sample([p for p in world.owned if id(p) not in chosen], count - len(subs))
    plan = [(p, HIJACK_TYPES[1]) for p in subs] + [(p, HIJACK_TYPES[0]) for p in exact]
    rng.shuffle(plan)
    return plan


class Hijacks:
    """Plants labelled hijacks: each one's first message, its spread to more peers, its end."""

    def __init__(self, world: World, writer: Writer, plan: list[tuple[Owned, str]]) -> None:
        self.world = world
        self.w = writer
        self.rng = writer.rng
        self.plan = plan
        self.planted: list[Hijack] = []
        self.pending: list[tuple[int, int, Peer, list[Any], list[str], list[str]]] = []
        self.tenant_asns = {a for t in world.tenants for a in t.asns}

    def _hijack(self, victim: Owned, kind: str) -> Hijack:
        rng = self.rng
        while True:
            origin = rng.choice(self.world.origins)
            if origin not in self.tenant_asns and origin not in victim.origin_asns:
                break
        if kind == HIJACK_TYPES[0]:
            return Hijack(kind, victim.tenant, victim.prefix, origin, "", victim.prefix)
        width, longest = (32, 24) if victim.net.afi == 4 else (128, 48)
        length = min(longest, victim.net.length + rng.choice((1, 2, 2, 8)))
        offset = rng.randrange(1 << (length - victim.net.length)) << (width - length)
        prefix = format_net(Net(victim.net.afi, victim.net.value + offset, length))
        return Hijack(kind, victim.tenant, prefix, origin, victim.prefix, victim.prefix)

    def start(self, line: int, spread: bool = True) -> bytes:
        """The first message of the next hijack (``line`` is its 1-based line number);
        with ``spread``, more peers pick it up over the next lines and later withdraw it."""
        victim, kind = self.plan[len(self.planted)]
        hijack = self._hijack(victim, kind)
        peer = self.w.peer(victim.net.afi)
        path = self.w.path(peer, hijack.origin_asn, private=False)
        message = self.w.update(peer, path, [hijack.prefix], kind="hijack")
        hijack.line, hijack.timestamp, hijack.peers = line, round(self.w.clock, 2), 1
        self.planted.append(hijack)
        if spread:
            rng = self.rng
            more = min(30, int(rng.paretovariate(1.2)))
            at = line
            for _ in range(more):
                at += rng.randint(1, 300)
                other = self.w.peer(victim.net.afi)
                path = self.w.path(other, hijack.origin_asn, private=False)
                self._push(at, other, path, [hijack.prefix], [])
                self._push(at + rng.randint(5000, 50_000), other, [], [], [hijack.prefix])
            hijack.peers += more
        return message

    def _push(
        self, at: int, peer: Peer, path: list[Any], prefixes: list[str], withdrawals: list[str]
    ) -> None:
        heapq.heappush(self.pending, (at, len(self.pending), peer, path, prefixes, withdrawals))

    def due(self, line: int) -> bytes | None:
        """A spread or withdrawal message due at ``line``, if any."""
        if not self.pending or self.pending[0][0] > line:
            return None
        _, _, peer, path, prefixes, withdrawals = heapq.heappop(self.pending)
        kind = "hijack-spread" if prefixes else "hijack-withdraw"
        return self.w.update(peer, path, prefixes, withdrawals, kind=kind)


# --- the two files ------------------------------------------------------------------


def labels_path(path: Path) -> Path:
    """Where the labels of the stream at ``path`` are (``X.jsonl`` -> ``X.labels.json``)."""
    return path.with_name(path.name.removesuffix(".jsonl") + ".labels.json")


def _write(path: Path, lines: Iterator[bytes]) -> int:
    count = 0
    with path.open("wb") as f:
        chunk: list[bytes] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 10_000:
                f.write(b"\n".join(chunk) + b"\n")
                count += len(chunk)
                chunk = []
        if chunk:
            f.write(b"\n".join(chunk) + b"\n")
            count += len(chunk)
    return count


def _merged(
    sources: list[Iterator[bytes | None]], planted: Hijacks, marks: list[int]
) -> Iterator[bytes]:
    """The sources one after the other, the hijacks' due messages woven in; a ``None``
    item starts the next hijack. ``marks`` gets the first line of each source; the last
    line is the first and only message of one more hijack."""
    line = 0
    for source in sources:
        marks.append(line + 1)
        for item in source:
            line += 1
            due = planted.due(line)
            while due is not None:
                yield due
                line += 1
                due = planted.due(line)
            yield planted.start(line) if item is None else item
    marks.append(line + 1)
    yield planted.start(line + 1, spread=False)


def _save_labels(
    path: Path, labels: dict[str, Any], writer: Writer, planted: Hijacks
) -> dict[str, Any]:
    labels["message_kinds"] = dict(sorted(writer.kinds.items()))
    labels["hijacks"] = [asdict(h) | {"expected": h.expected()} for h in planted.planted]
    labels_path(path).write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
    return labels


def generate(
    path: Path,
    messages: int = 1_000_000,
    seed: int = 1,
    peers: int = 80_000,
    table: int = TABLE,
    monitored: int = 1000,
    hijacks: int = 100,
) -> dict[str, Any]:
    """Writes the stream and its labels file; returns the labels."""
    world = World(seed, peers, table, monitored)
    rng = random.Random(seed + 1)
    writer = Writer(world, rng)
    background = Background(world, writer)
    planted = Hijacks(world, writer, hijack_plan(world, rng, hijacks))
    # hijack starts spread over the stream after its first 2 %; the last one is the last line
    starts = set(rng.sample(range(max(2, messages // 50), messages), hijacks - 1))

    def lines() -> Iterator[bytes]:
        for line in range(1, messages):
            if line in starts:
                yield planted.start(line)
            else:
                yield planted.due(line) or background.next()
        yield planted.start(messages, spread=False)

    written = _write(path, lines())
    labels = {"kind": "stream", "file": path.name, "seed": seed, "messages": written}
    return _save_labels(path, labels | world.labels(), writer, planted)


def generate_storm(
    path: Path,
    pairs: int = 200_000,
    seed: int = 1,
    peers: int = 80_000,
    table: int = TABLE,
    monitored: int = 1000,
    hijacks: int = 20,
    prelude: int = 50_000,
) -> dict[str, Any]:
    """The storm file: the victims' table, ``prelude`` messages of normal traffic, then
    ``pairs`` leaked prefix-origin pairs within two minutes of recorded time with
    ``hijacks - 1`` hijacks planted in it, 200 normal messages, and the last hijack."""
    world = World(seed, peers, max(table, pairs + 1000), monitored)
    rng = random.Random(seed + 2)
    writer = Writer(world, rng)
    background = Background(world, writer)
    planted = Hijacks(world, writer, hijack_plan(world, rng, hijacks))
    victims = rng.sample(range(len(world.table)), pairs)
    leaker = rng.choice(world.origins)
    upstream = rng.choice(world.transit)

    def table_load() -> Iterator[bytes]:
        """The victims' own routes, as two peers' tables after their sessions come up."""
        by_origin: dict[tuple[int, int], list[str]] = {}
        for index in victims:
            net, origins = world.table[index]
            by_origin.setdefault((origins[0], net.afi), []).append(format_net(net))
        loaders = {afi: writer.peer(afi) for afi in (4, 6)}
        for peer in loaders.values():
            yield writer.peer_state(peer, "connected")
        for (origin, afi), prefixes in by_origin.items():
            peer = loaders[afi]
            for lo in range(0, len(prefixes), 40):
                yield writer.update(peer, writer.path(peer, origin), prefixes[lo : lo + 40])

    def storm() -> Iterator[bytes | None]:
        """Every victim originated by the leaker, seen by 1-4 peers, 25 prefixes a message."""
        by_afi: dict[int, list[str]] = {4: [], 6: []}
        for index in victims:
            net = world.table[index][0]
            by_afi[net.afi].extend([format_net(net)] * (1 + int(rng.random() ** 2 * 4)))
        batches = []
        for afi, prefixes in by_afi.items():
            rng.shuffle(prefixes)
            batches += [(afi, prefixes[lo : lo + 25]) for lo in range(0, len(prefixes), 25)]
        rng.shuffle(batches)
        plant = set(rng.sample(range(len(batches)), hijacks - 1))
        writer.rate = len(batches) / 120.0
        for number, (afi, prefixes) in enumerate(batches):
            peer = writer.peer(afi)
            hops = writer.path(peer, leaker, private=False, upstream=upstream)
            yield writer.update(peer, hops, prefixes, kind="storm")
            if number in plant:
                yield None
        writer.rate = RECORDED_RATE

    marks: list[int] = []
    sources = [
        table_load(),
        (background.next() for _ in range(prelude)),
        storm(),
        (background.next() for _ in range(200)),
    ]
    written = _write(path, _merged(sources, planted, marks))
    labels = {
        "kind": "storm",
        "file": path.name,
        "seed": seed,
        "messages": written,
        "storm": {
            "pairs": pairs,
            "leaker_asn": leaker,
            "first_line": marks[2],
            "last_line": marks[3] - 1,
        },
    }
    return _save_labels(path, labels | world.labels(), writer, planted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the JSONL file to write (labels beside it)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peers", type=int, default=80_000)
    parser.add_argument("--table", type=int, default=TABLE, help="unowned prefixes")
    parser.add_argument("--monitored", type=int, default=1000)
    parser.add_argument("--hijacks", type=int, default=None, help="default 100, storm 20")
    parser.add_argument("--storm", action="store_true", help="write the storm file instead")
    parser.add_argument("--storm-pairs", type=int, default=200_000)
    args = parser.parse_args()
    if args.storm:
        labels = generate_storm(
            args.out, args.storm_pairs, args.seed, args.peers, args.table, args.monitored,
            args.hijacks or 20,
        )  # fmt: skip
    else:
        labels = generate(
            args.out, args.messages, args.seed, args.peers, args.table, args.monitored,
            args.hijacks or 100,
        )  # fmt: skip
    print(
        f"wrote {labels['messages']:,} messages to {args.out} and the labels to "
        f"{labels_path(args.out)}: {len(labels['hijacks'])} hijacks, "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(labels["message_kinds"].items()))
    )


if __name__ == "__main__":
    main()
