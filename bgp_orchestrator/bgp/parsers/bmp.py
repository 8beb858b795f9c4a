"""BGP Monitoring Protocol (RFC 7854; Loc-RIB per RFC 9069): one router's messages into updates.

A router opens a TCP connection to the station and sends a stream of BMP
messages, each a 6-byte common header (version 3, length, type) and a body.
:func:`parse_header` checks the header: a wrong version or an impossible length
means the stream's framing is lost (:class:`FramingLost`), and only then must the
connection be closed. Everything else wrong with a message is :class:`Malformed`
for that message alone; the next one is read as usual.

:class:`Router` holds what one connection has said so far (its name from the
Initiation message, the peers that are up, their statistics) and turns each message
into updates:

- Route Monitoring: the BGP UPDATE inside is decoded by the MRT decoders
  (:mod:`.bgp4mp`, then mrtparse for what that one does not take), wrapped in a
  BGP4MP_ET record built from the per-peer header, so BMP and MRT feeds give the
  same updates for the same BGP message.
- Peer Up / Peer Down: a ``PEER_UP`` / ``PEER_DOWN`` update of each session
  identity of that peer (below).
- Initiation, Termination, Statistics Report, Route Mirroring: no updates; their
  content is kept in the router's state and statistics.

Session identity: ``collector`` is the router (its sysName from the Initiation
message, else its address), followed by ``/<route distinguisher>`` for peers of
a VRF, and by ``/post-policy`` for the post-policy Adj-RIB-In and ``/loc-rib``
for the Loc-RIB, so that the views a router sends never mix in one session's
state; the pre-policy Adj-RIB-In (what the peer sent) is the router's name alone.
``peer_address`` is the peer's address (for the Loc-RIB, which has no peer, the
BGP identifier of the router's instance). Adj-RIB-Out messages (RFC 8671) are
counted, not published: they are the router's announcements, not its peers'.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bgp_orchestrator.bgp.parsers import bgp4mp, mrt
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update

SOURCE = "bmp"
VERSION = 3
HEADER = 6
PER_PEER = 42
#: The largest message accepted: a Peer Up carries two OPENs of up to 64 KiB (RFC 8654
#: extended messages) and TLVs; anything longer is a stream out of step.
MAX_MESSAGE = 1 << 18
BGP_HEADER = 19
MARKER = b"\xff" * 16
AS_TRANS = 23456

ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, INITIATION, TERMINATION, MIRRORING = range(7)
MESSAGE_TYPES = {
    ROUTE_MONITORING: "route-monitoring",
    STATISTICS: "statistics-report",
    PEER_DOWN: "peer-down",
    PEER_UP: "peer-up",
    INITIATION: "initiation",
    TERMINATION: "termination",
    MIRRORING: "route-mirroring",
}
GLOBAL_PEER, RD_PEER, LOCAL_PEER, LOC_RIB_PEER = 0, 1, 2, 3
PEER_TYPES = {
    GLOBAL_PEER: "global instance",
    RD_PEER: "RD instance",
    LOCAL_PEER: "local instance",
    LOC_RIB_PEER: "Loc-RIB instance",
}
FLAG_V, FLAG_L, FLAG_A, FLAG_O = 0x80, 0x40, 0x20, 0x10  # IPv6, post-policy, 2-byte AS, out

PRE_POLICY, POST_POLICY, LOC_RIB = "pre-policy", "post-policy", "loc-rib"
VIEWS = (PRE_POLICY, POST_POLICY, LOC_RIB)

PEER_DOWN_REASONS = {
    1: "the router closed the session with a NOTIFICATION",
    2: "the router closed the session without a NOTIFICATION",
    3: "the peer closed the session with a NOTIFICATION",
    4: "the peer closed the session without a NOTIFICATION",
    5: "the peer was de-configured",
    6: "the Loc-RIB is no longer monitored",
}
TERMINATION_REASONS = {
    0: "administratively closed",
    1: "unspecified",
    2: "out of resources",
    3: "redundant connection",
    4: "permanently administratively closed",
}
#: Statistics Report counters (RFC 7854 4.8, RFC 8671, RFC 9069): type -> name
STATISTICS_NAMES = {
    0: "rejected-prefixes",
    1: "duplicate-prefix-advertisements",
    2: "duplicate-withdraws",
    3: "cluster-list-loops",
    4: "as-path-loops",
    5: "originator-id-loops",
    6: "as-confed-loops",
    7: "adj-rib-in-routes",
    8: "loc-rib-routes",
    9: "adj-rib-in-routes-per-afi-safi",
    10: "loc-rib-routes-per-afi-safi",
    11: "updates-treated-as-withdraw",
    12: "prefixes-treated-as-withdraw",
    13: "duplicate-update-messages",
    14: "adj-rib-out-pre-policy-routes",
    15: "adj-rib-out-post-policy-routes",
    16: "adj-rib-out-pre-policy-routes-per-afi-safi",
    17: "adj-rib-out-post-policy-routes-per-afi-safi",
}

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ZERO8 = bytes(8)
_ntop = socket.inet_ntop


class FramingLost(Malformed):
    """The common header cannot be right: the stream's message boundaries are lost."""


def parse_header(header: bytes, max_message: int = MAX_MESSAGE) -> tuple[int, int]:
    """``(length, type)`` of a message from its 6-byte common header; FramingLost when
    the version is not 3 or the length is shorter than the header or over
    ``max_message`` (versions 1 and 2 had no length field: their stream cannot be cut
    into messages)."""
    if len(header) != HEADER:
        raise FramingLost("bmp-framing", f"a BMP header is {HEADER} bytes, got {len(header)}")
    version = header[0]
    length = _U32.unpack_from(header, 1)[0]
    if version != VERSION:
        raise FramingLost(
            "bmp-framing",
            f"BMP version {version} where 3 was expected (RFC 7854): not a BMP v3 stream, "
            "or its framing is lost",
            "version",
            version,
        )
    if length < HEADER or length > max_message:
        raise FramingLost(
            "bmp-framing",
            f"BMP message length {length} is outside {HEADER}..{max_message}: the framing "
            "of the stream is lost",
            "length",
            length,
        )
    return length, header[5]


def _malformed(message: str, **details: Any) -> Malformed:
    return Malformed("malformed-bmp", message, details=details or None)


class PeerHeader(NamedTuple):
    """The per-peer header (RFC 7854 4.2) of Route Monitoring, Statistics, Peer Up/Down."""

    peer_type: int
    flags: int
    distinguisher: bytes
    raw_address: bytes  # 16 bytes; an IPv4 address in the last 4
    address: str
    asn: int
    bgp_id: str
    timestamp: float

    @property
    def ipv6(self) -> bool:
        return self.peer_type != LOC_RIB_PEER and bool(self.flags & FLAG_V)

    @property
    def view(self) -> str:
        if self.peer_type == LOC_RIB_PEER:
            return LOC_RIB
        return POST_POLICY if self.flags & FLAG_L else PRE_POLICY

    @property
    def adj_rib_out(self) -> bool:
        return self.peer_type != LOC_RIB_PEER and bool(self.flags & FLAG_O)

    @property
    def two_byte_as(self) -> bool:
        return self.peer_type != LOC_RIB_PEER and bool(self.flags & FLAG_A)

    @property
    def key(self) -> tuple[int, bytes, bytes]:
        """The peer, whatever view a message is about."""
        return (self.peer_type, self.distinguisher, self.raw_address)


def peer_header(message: bytes, now: Callable[[], float] = time.time) -> PeerHeader:
    if len(message) < HEADER + PER_PEER:
        raise _malformed(
            f"{MESSAGE_TYPES.get(message[5], 'message')} of {len(message)} bytes is too short "
            f"for its per-peer header ({HEADER + PER_PEER} bytes at least)"
        )
    at = HEADER
    peer_type, flags = message[at], message[at + 1]
    if peer_type not in PEER_TYPES:
        raise Malformed(
            "unsupported-bmp", f"peer type {peer_type} is not one of RFC 7854/9069's", "peer_type"
        )
    distinguisher = message[at + 2 : at + 10]
    raw = message[at + 10 : at + 26]
    asn = _U32.unpack_from(message, at + 26)[0]
    bgp_id = _ntop(socket.AF_INET, message[at + 30 : at + 34])
    seconds, micro = _U32.unpack_from(message, at + 34)[0], _U32.unpack_from(message, at + 38)[0]
    if micro > 999_999:
        raise _malformed(f"per-peer header timestamp has {micro} microseconds")
    timestamp = seconds + micro / 1e6 if seconds else now()  # zero: time unavailable
    if peer_type == LOC_RIB_PEER:
        address = bgp_id
    elif flags & FLAG_V:
        address = _ntop(socket.AF_INET6, raw)
    else:
        address = _ntop(socket.AF_INET, raw[12:])
    return PeerHeader(peer_type, flags, distinguisher, raw, address, asn, bgp_id, timestamp)


def distinguisher_text(raw: bytes) -> str:
    """A route distinguisher (RFC 4364 4.2) as ``asn:number`` or ``ip:number``; another
    8-byte peer distinguisher as hex; "" for zero (the global instance)."""
    if raw == _ZERO8:
        return ""
    kind = _U16.unpack_from(raw, 0)[0]
    if kind == 0:
        return f"{_U16.unpack_from(raw, 2)[0]}:{_U32.unpack_from(raw, 4)[0]}"
    if kind == 1:
        return f"{_ntop(socket.AF_INET, raw[2:6])}:{_U16.unpack_from(raw, 6)[0]}"
    if kind == 2:
        return f"{_U32.unpack_from(raw, 2)[0]}:{_U16.unpack_from(raw, 6)[0]}"
    return raw.hex()


def _tlvs(data: bytes, start: int, what: str) -> list[tuple[int, bytes]]:
    """Information TLVs (2-byte type, 2-byte length) from ``start`` to the end."""
    out: list[tuple[int, bytes]] = []
    at = start
    while at < len(data):
        if at + 4 > len(data):
            raise _malformed(f"{what}: {len(data) - at} stray byte(s) where a TLV was expected")
        kind, length = _U16.unpack_from(data, at)[0], _U16.unpack_from(data, at + 2)[0]
        end = at + 4 + length
        if end > len(data):
            raise _malformed(
                f"{what}: TLV type {kind} of {length} bytes runs past the message's end "
                f"({len(data) - at - 4} left)"
            )
        out.append((kind, data[at + 4 : end]))
        at = end
    return out


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").strip("\x00").strip()


def _bgp_message(data: bytes, at: int, what: str, wanted: int | None) -> int:
    """Checks the BGP message at ``at`` (marker, length, type); returns where it ends."""
    if at + BGP_HEADER > len(data):
        raise _malformed(f"{what}: no room for a BGP message header")
    if data[at : at + 16] != MARKER:
        raise _malformed(f"{what}: the BGP message does not start with its marker")
    length: int = _U16.unpack_from(data, at + 16)[0]
    if length < BGP_HEADER or at + length > len(data):
        raise _malformed(
            f"{what}: BGP message length {length} does not fit the "
            f"{len(data) - at} bytes left in the BMP message"
        )
    if wanted is not None and data[at + 18] != wanted:
        raise _malformed(f"{what}: BGP message type {data[at + 18]} where {wanted} was expected")
    return at + length


def _open_info(message: bytes) -> tuple[int, dict[tuple[int, int], int]]:
    """An OPEN's AS (the 4-byte AS capability's, RFC 6793, else My AS) and its ADD-PATH
    capability (RFC 7911): (AFI, SAFI) -> send/receive bits (1 receive, 2 send)."""
    if len(message) < 29:
        return 0, {}
    asn = _U16.unpack_from(message, 20)[0]
    add_path: dict[tuple[int, int], int] = {}
    at, end = 29, min(29 + message[28], len(message))
    while at + 2 <= end:
        kind, length = message[at], message[at + 1]
        value = message[at + 2 : at + 2 + length]
        at += 2 + length
        if kind != 2:  # not capabilities
            continue
        c = 0
        while c + 2 <= len(value):
            code, size = value[c], value[c + 1]
            body = value[c + 2 : c + 2 + size]
            c += 2 + size
            if code == 65 and len(body) == 4:
                asn = _U32.unpack_from(body, 0)[0]
            elif code == 69:
                for i in range(0, len(body) - 3, 4):
                    family = (_U16.unpack_from(body, i)[0], body[i + 2])
                    add_path[family] = add_path.get(family, 0) | body[i + 3]
    return asn, add_path


#: Path attributes never handed to mrtparse: AIGP (its decoder loops for ever on a TLV
#: shorter than its header) and ATTR_SET (which may hold one). No detector reads them.
_NOT_FOR_MRTPARSE = frozenset({26, 128})


def _for_mrtparse(pdu: bytes, what: str) -> bytes:
    """The UPDATE without the attributes of :data:`_NOT_FOR_MRTPARSE`; Malformed when its
    attributes do not add up (so mrtparse only ever reads a well-formed attribute list)."""
    at = BGP_HEADER
    if at + 2 > len(pdu):
        raise _malformed(f"{what}: UPDATE too short for its withdrawn routes length")
    withdrawn = _U16.unpack_from(pdu, at)[0]
    at += 2 + withdrawn
    if at + 2 > len(pdu):
        raise _malformed(f"{what}: withdrawn routes run past the UPDATE's end")
    size = _U16.unpack_from(pdu, at)[0]
    start, end = at + 2, at + 2 + size
    if end > len(pdu):
        raise _malformed(f"{what}: path attributes run past the UPDATE's end")
    kept: list[bytes] = []
    dropped = False
    at = start
    while at < end:
        if at + 3 > end:
            raise _malformed(f"{what}: a path attribute header is cut off")
        flags, code = pdu[at], pdu[at + 1]
        if flags & 0x10:
            if at + 4 > end:
                raise _malformed(f"{what}: a path attribute header is cut off")
            stop = at + 4 + _U16.unpack_from(pdu, at + 2)[0]
        else:
            stop = at + 3 + pdu[at + 2]
        if stop > end:
            raise _malformed(f"{what}: path attribute {code} runs past the attributes' end")
        if code in _NOT_FOR_MRTPARSE:
            dropped = True
        else:
            kept.append(pdu[at:stop])
        at = stop
    if not dropped:
        return pdu
    attributes = b"".join(kept)
    rest = pdu[BGP_HEADER : start - 2] + _U16.pack(len(attributes)) + attributes + pdu[end:]
    return pdu[:16] + _U16.pack(BGP_HEADER + len(rest)) + pdu[18:19] + rest


@dataclass
class Peer:
    """A peer of the router (in one instance), while it is up."""

    asn: int
    address: str
    up: bool = False
    add_path: bool = False  # the router receives ADD-PATH from it (RFC 7911)
    local_asn: int = 0  # the router's AS on this session (its OPEN's)
    identities: set[str] = field(default_factory=set)  # collectors with a PEER_UP published


@dataclass
class RouterStats:
    messages: dict[str, int] = field(default_factory=dict)
    updates: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    skipped_adj_rib_out: int = 0
    skipped_views: int = 0
    #: announcements whose AS path began with the router's own AS on an eBGP session
    #: (FRR until FRRouting/frr#21815, 2026, prepends it in BMP), which was removed
    local_as_removed: int = 0
    peer_ups: int = 0
    peer_downs: int = 0
    #: the last Statistics Report of each session identity: counter name -> value
    reports: dict[str, dict[str, int | dict[str, int]]] = field(default_factory=dict)


class Router:
    """One BMP connection's state (see the module's docstring). ``handle`` one message
    at a time: it returns the updates to publish or raises Malformed."""

    def __init__(
        self,
        address: str,
        views: tuple[str, ...] | frozenset[str] = VIEWS,
        *,
        now: Callable[[], float] = time.time,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.name = address
        self.sys_name = ""
        self.sys_descr = ""
        self.strings: list[str] = []
        self.views = frozenset(views)
        self.now = now
        self.log = log or (lambda _text: None)
        self.peers: dict[tuple[int, bytes, bytes], Peer] = {}
        self.stats = RouterStats()
        self.initiated = False
        self.terminated: str | None = None  # the Termination message's reason
        self._published = False
        self._identities: dict[tuple[bytes, str], str] = {}

    # -- identities -------------------------------------------------------------------

    def identity(self, header: PeerHeader, view: str | None = None) -> str:
        """The ``collector`` of the session's updates in ``view`` (the header's own)."""
        view = view or header.view
        key = (header.distinguisher, view)
        collector = self._identities.get(key)
        if collector is None:
            name = self.name
            rd = distinguisher_text(header.distinguisher)
            if rd:
                name = f"{name}/{rd}"
            collector = name if view == PRE_POLICY else f"{name}/{view}"
            self._identities[key] = collector
        return collector

    def _first_view(self, header: PeerHeader) -> str | None:
        """The view whose identity a Peer Up announces at once (others when they first
        carry routes)."""
        if header.peer_type == LOC_RIB_PEER:
            return LOC_RIB if LOC_RIB in self.views else None
        for view in (PRE_POLICY, POST_POLICY):
            if view in self.views:
                return view
        return None

    # -- messages ---------------------------------------------------------------------

    def handle(self, message: bytes) -> list[Update]:
        length, kind = parse_header(message[:HEADER], max(len(message), HEADER))
        if length != len(message):
            raise FramingLost(
                "bmp-framing", f"BMP header says {length} bytes, the message has {len(message)}"
            )
        name = MESSAGE_TYPES.get(kind)
        if name is None:
            raise Malformed(
                "unsupported-bmp",
                f"BMP message type {kind} is not one of RFC 7854's (0-6)",
                "type",
                kind,
            )
        counts = self.stats.messages
        counts[name] = counts.get(name, 0) + 1
        if kind == ROUTE_MONITORING:
            updates = self._route_monitoring(message)
        elif kind == PEER_UP:
            updates = self._peer_up(message)
        elif kind == PEER_DOWN:
            updates = self._peer_down(message)
        elif kind == STATISTICS:
            self._statistics(message)
            updates = []
        elif kind == INITIATION:
            self._initiation(message)
            updates = []
        elif kind == TERMINATION:
            self._termination(message)
            updates = []
        else:  # route mirroring: verbatim copies of PDUs, not routes
            peer_header(message, self.now)
            updates = []
        if updates:
            self._published = True
            self.stats.updates += len(updates)
        return updates

    def _initiation(self, message: bytes) -> None:
        for kind, value in _tlvs(message, HEADER, "initiation"):
            if kind == 0:
                self.strings.append(_text(value))
            elif kind == 1:
                self.sys_descr = _text(value)
            elif kind == 2:
                self.sys_name = _text(value)
        self.initiated = True
        if self.sys_name and "|" not in self.sys_name:
            if self._published and self.sys_name != self.name:
                self.log(
                    f"sysName {self.sys_name!r} arrived after updates were published as "
                    f"{self.name!r}; keeping {self.name!r} for this connection"
                )
            else:
                self.name = self.sys_name
                self._identities.clear()

    def _termination(self, message: bytes) -> None:
        reason = "no reason given"
        texts = []
        for kind, value in _tlvs(message, HEADER, "termination"):
            if kind == 0:
                texts.append(_text(value))
            elif kind == 1 and len(value) == 2:
                code = _U16.unpack_from(value, 0)[0]
                reason = TERMINATION_REASONS.get(code, f"reason {code}")
        self.terminated = "; ".join([reason, *texts])

    def _peer_up(self, message: bytes) -> list[Update]:
        header = peer_header(message, self.now)
        at = HEADER + PER_PEER
        if at + 20 > len(message):
            raise _malformed(f"peer up of {header.address}: no room for local address and ports")
        at += 20  # local address, local port, remote port
        sent_end = _bgp_message(message, at, f"peer up of {header.address}, sent OPEN", 1)
        received_end = _bgp_message(
            message, sent_end, f"peer up of {header.address}, received OPEN", 1
        )
        _tlvs(message, received_end, f"peer up of {header.address}")  # checked, not kept
        local_asn, sent = _open_info(message[at:sent_end])
        _, received = _open_info(message[sent_end:received_end])
        add_path = any(bits & 1 and received.get(f, 0) & 2 for f, bits in sent.items())
        peer = Peer(header.asn, header.address, True, add_path, local_asn)
        old = self.peers.get(header.key)
        if old is not None:  # up again without a down in between: same sessions
            peer.identities = old.identities
        self.peers[header.key] = peer
        self.stats.peer_ups += 1
        self.log(
            f"peer {header.address} AS{header.asn} up ({PEER_TYPES[header.peer_type]}"
            + (
                f" {distinguisher_text(header.distinguisher)}"
                if header.distinguisher != _ZERO8
                else ""
            )
            + (", ADD-PATH" if peer.add_path else "")
            + ")"
        )
        view = self._first_view(header)
        if view is None:
            return []
        return self._session_up(header, peer, view)

    def _session_up(self, header: PeerHeader, peer: Peer, view: str) -> list[Update]:
        collector = self.identity(header, view)
        peer.identities.add(collector)
        return [
            Update(
                Kind.PEER_UP,
                header.timestamp,
                header.address,
                header.asn,
                source=SOURCE,
                collector=collector,
            )
        ]

    def _peer_down(self, message: bytes) -> list[Update]:
        header = peer_header(message, self.now)
        at = HEADER + PER_PEER
        if at >= len(message):
            raise _malformed(f"peer down of {header.address} has no reason")
        code = message[at]
        reason = PEER_DOWN_REASONS.get(code, f"reason {code}")
        if code in (1, 3):
            _bgp_message(message, at + 1, f"peer down of {header.address}, NOTIFICATION", 3)
        elif code == 2 and len(message) < at + 3:
            raise _malformed(f"peer down of {header.address}: no FSM event code")
        peer = self.peers.pop(header.key, None)
        self.stats.peer_downs += 1
        self.log(f"peer {header.address} AS{header.asn} down: {reason}")
        identities = set(peer.identities) if peer is not None else set()
        if not identities:
            view = self._first_view(header)
            if view is not None:
                identities.add(self.identity(header, view))
        return [
            Update(
                Kind.PEER_DOWN,
                header.timestamp,
                header.address,
                header.asn,
                source=SOURCE,
                collector=collector,
            )
            for collector in sorted(identities)
        ]

    def _statistics(self, message: bytes) -> None:
        header = peer_header(message, self.now)
        at = HEADER + PER_PEER
        if at + 4 > len(message):
            raise _malformed(f"statistics report of {header.address} has no count")
        count = _U32.unpack_from(message, at)[0]
        tlvs = _tlvs(message, at + 4, f"statistics report of {header.address}")
        if len(tlvs) != count:
            raise _malformed(
                f"statistics report of {header.address} announces {count} counters, "
                f"holds {len(tlvs)}"
            )
        values: dict[str, int | dict[str, int]] = {}
        for kind, value in tlvs:
            name = STATISTICS_NAMES.get(kind, f"type-{kind}")
            if kind in (9, 10, 16, 17):  # AFI, SAFI, 64-bit gauge
                if len(value) != 11:
                    raise _malformed(f"statistics counter {name} of {len(value)} bytes (not 11)")
                family = f"{_U16.unpack_from(value, 0)[0]}/{value[2]}"
                per: Any = values.setdefault(name, {})
                per[family] = int.from_bytes(value[3:], "big")
            elif len(value) in (4, 8):
                values[name] = int.from_bytes(value, "big")
            else:
                raise _malformed(f"statistics counter {name} of {len(value)} bytes (not 4 or 8)")
        self.stats.reports[f"{self.identity(header)}|{header.address}"] = values

    def _route_monitoring(self, message: bytes) -> list[Update]:
        header = peer_header(message, self.now)
        at = HEADER + PER_PEER
        what = f"route monitoring of {header.address}"
        end = _bgp_message(message, at, what, 2)
        if end != len(message):
            raise _malformed(
                f"{what}: {len(message) - end} byte(s) after the BGP UPDATE", peer=header.address
            )
        if header.adj_rib_out:
            self.stats.skipped_adj_rib_out += 1
            return []
        view = header.view
        if view not in self.views:
            self.stats.skipped_views += 1
            return []
        collector = self.identity(header)
        peer = self.peers.get(header.key)
        out: list[Update] = []
        if peer is None:
            peer = self.peers[header.key] = Peer(header.asn, header.address)
            self.log(f"routes of peer {header.address} before its Peer Up message")
        if collector not in peer.identities:
            if peer.up:
                out = self._session_up(header, peer, view)
            else:
                peer.identities.add(collector)
        out.extend(self._decode_update(header, peer, message[at:], collector, what))
        return out

    def _decode_update(
        self, header: PeerHeader, peer: Peer, pdu: bytes, collector: str, what: str
    ) -> list[Update]:
        """The BGP UPDATE as a BGP4MP_ET record (RFC 6396 4.4) through the MRT decoders."""
        as2 = header.two_byte_as
        asn = header.asn if not as2 or header.asn <= 0xFFFF else AS_TRANS
        add_path = peer.add_path and header.peer_type != LOC_RIB_PEER
        subtype = (8 if add_path else 1) if as2 else (9 if add_path else 4)
        if header.peer_type == LOC_RIB_PEER or not header.ipv6:
            family = b"\x00\x01"
            address = socket.inet_aton(header.address)
        else:
            family = b"\x00\x02"
            address = header.raw_address
        seconds = int(header.timestamp)
        micro = round((header.timestamp - seconds) * 1e6) % 1_000_000
        asn_bytes = asn.to_bytes(2 if as2 else 4, "big")
        body = b"".join(
            (
                _U32.pack(micro),
                asn_bytes,
                bytes(len(asn_bytes)),  # local AS: not in the per-peer header
                b"\x00\x00",  # interface index
                family,
                address,
                bytes(len(address)),  # local address
                pdu,
            )
        )
        decoded = bgp4mp.decode(17, subtype, seconds, body, collector, SOURCE)
        if decoded is not None:
            updates = decoded[0]
        else:
            body = body[: len(body) - len(pdu)] + _for_mrtparse(pdu, what)
            record = mrt.decode_record(
                _U32.pack(seconds)
                + _U16.pack(17)
                + _U16.pack(subtype)
                + _U32.pack(len(body))
                + body,
                collector,
            )
            if record.error is not None:
                raise _malformed(f"{what}: {record.error.message}", peer=header.address)
            updates = [u._replace(source=SOURCE) for u in record.updates]
        if asn != header.asn:
            updates = [u._replace(peer_asn=header.asn) for u in updates]
        local = peer.local_asn
        if local and local != header.asn and header.peer_type != LOC_RIB_PEER:
            updates = [self._without_local_as(u, local) for u in updates]
        return updates

    def _without_local_as(self, update: Update, local: int) -> Update:
        """The route as the peer sent it: an eBGP peer's path never starts with the
        router's own AS (the router would drop it as a loop), but FRR's BMP (until
        FRRouting/frr#21815, 2026) writes the path as it would send it on, with its AS
        in front."""
        path = update.as_path
        if not path or path[0] != local:
            return update
        if not self.stats.local_as_removed:
            self.log(
                f"the router puts its own AS{local} in front of the AS paths it reports "
                "(FRR before FRRouting/frr#21815); removed from every such path"
            )
        self.stats.local_as_removed += 1
        return update._replace(as_path=path[1:])
