"""A fast decoder for the common BGP4MP records: UPDATE messages and state changes.

mrtparse decodes a record field by field through generic helpers (about 70 us for
an UPDATE); this module decodes the records that make up almost all of an update
dump (BGP4MP and BGP4MP_ET, subtypes MESSAGE, MESSAGE_AS4, STATE_CHANGE and
STATE_CHANGE_AS4, IPv4/IPv6 unicast) directly from their bytes, in a fraction of
that. It is strict: whenever a record is anything but plain and well formed (an
attribute of an unexpected length, lengths that do not add up, a prefix with host
bits, a repeated prefix, which mrtparse takes as a hint of ADD-PATH, another
address family ...) :func:`decode` returns None and the caller decodes the record
with mrtparse, which gives it the meaning, or the error, it always had. A test
compares both decoders on every record of the real dumps.
"""

from __future__ import annotations

import socket
import struct

from bgp_orchestrator.bgp.prefix import Net, remember_bucket
from bgp_orchestrator.bgp.recent import Recent
from bgp_orchestrator.bgp.update import AsPathElement, Kind, Update

SOURCE = "mrt"
AS_TRANS = 23456
ESTABLISHED = 6

_new = tuple.__new__
_INET, _INET6 = socket.AF_INET, socket.AF_INET6
_ntop = socket.inet_ntop
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_AS2 = frozenset({0, 1})  # STATE_CHANGE, MESSAGE: 2-byte ASNs
_AS4 = frozenset({4, 5})  # MESSAGE_AS4, STATE_CHANGE_AS4
_STATE = frozenset({0, 5})
_structs: dict[str, struct.Struct] = {}
# NLRI bytes (length byte and prefix bytes) -> canonical prefix, per address family
_nlri: dict[int, Recent[bytes, str]] = {1: Recent(1 << 17), 2: Recent(1 << 17)}


class _Unusual(Exception):
    """Not a record this decoder takes: mrtparse decodes it."""


def _ints(kind: str, data: bytes, offset: int, count: int) -> tuple[int, ...]:
    fmt = f">{count}{kind}"
    unpacker = _structs.get(fmt)
    if unpacker is None:
        unpacker = _structs[fmt] = struct.Struct(fmt)
    values: tuple[int, ...] = unpacker.unpack_from(data, offset)
    return values


def _prefixes(data: bytes, start: int, end: int, afi: int) -> list[str]:
    """The NLRI between ``start`` and ``end`` as canonical prefixes."""
    width, family, version = (4, _INET, 4) if afi == 1 else (16, _INET6, 6)
    cache = _nlri[afi]
    young = cache.young
    out: list[str] = []
    seen: set[bytes] = set()
    at = start
    while at < end:
        length = data[at]
        if length > width * 8:
            raise _Unusual
        size = (length + 7) >> 3
        stop = at + 1 + size
        if stop > end:
            raise _Unusual
        raw = data[at:stop]
        if raw in seen:  # mrtparse reads repeated prefixes as ADD-PATH: let it
            raise _Unusual
        seen.add(raw)
        prefix = young.get(raw)
        if prefix is None:
            prefix = cache.recall(raw)
            if prefix is None:
                if length & 7 and raw[-1] & (0xFF >> (length & 7)):
                    raise _Unusual  # host bits: mrtparse rejects (or re-reads) it
                address = raw[1:] + bytes(width - size)
                # inet_ntop writes the canonical form (what canonical_prefix returns)
                prefix = f"{_ntop(family, address)}/{length}"
                value = int.from_bytes(address, "big")
                remember_bucket(prefix, _new(Net, (version, value, length)))
                cache.remember(raw, prefix)
        out.append(prefix)
        at = stop
    return out


def _segments(data: bytes, start: int, end: int, asn_size: int) -> list[AsPathElement]:
    out: list[AsPathElement] = []
    kind = "H" if asn_size == 2 else "I"
    at = start
    while at < end:
        if at + 2 > end:
            raise _Unusual
        seg_type, count = data[at], data[at + 1]
        stop = at + 2 + count * asn_size
        if stop > end:
            raise _Unusual
        asns = _ints(kind, data, at + 2, count)
        if seg_type == 1:  # AS_SET
            out.append(tuple(sorted(set(asns))))
        elif seg_type == 2:  # AS_SEQUENCE
            out.extend(asns)
        # 3, 4: confederation segments are local to the confederation; others unknown
        at = stop
    return out


def _merge_as4(
    as_path: list[AsPathElement], as4_path: list[AsPathElement]
) -> tuple[AsPathElement, ...]:
    if not as4_path or len(as4_path) > len(as_path):
        return tuple(as_path)
    return tuple(as_path[: len(as_path) - len(as4_path)] + as4_path)


# attributes mrtparse reads with a fixed size whatever their length says: (code, size)
_FIXED = {1: 1, 4: 4, 5: 4, 9: 4, 18: 8}
# attributes mrtparse reads in steps of this many bytes up to their end
_STEPS = {8: 4, 10: 4, 16: 8, 32: 12}
_HANDLED_ELSEWHERE = frozenset({2, 3, 7, 14, 15, 17})
_GENERIC_MAX = 0xFF  # unknown codes are read as raw bytes by mrtparse, as here


def decode(
    mrt_type: int,
    subtype: int,
    seconds: int,
    body: bytes,
    collector: str,
    source: str = SOURCE,
) -> tuple[list[Update], bool] | None:
    """``(updates, state_change)`` of a BGP4MP record as :mod:`mrt` would make them from
    mrtparse's decoding, or None if this decoder does not take the record. ``source``
    names the feed in the updates (the BMP station hands its BGP messages in as
    BGP4MP records)."""
    if subtype in _AS4:
        asn_size = 4
    elif subtype in _AS2:
        asn_size = 2
    else:
        return None
    try:
        return _decode(mrt_type, subtype, seconds, body, collector, asn_size, source)
    except (_Unusual, IndexError, struct.error, ValueError):
        return None


def _decode(
    mrt_type: int,
    subtype: int,
    seconds: int,
    body: bytes,
    collector: str,
    asn_size: int,
    source: str,
) -> tuple[list[Update], bool]:
    at = 0
    timestamp = float(seconds)
    if mrt_type == 17:  # BGP4MP_ET: microseconds first
        micro = _U32.unpack_from(body, 0)[0]
        if micro:
            timestamp = seconds + micro / 1e6
        at = 4
    peer_asn = _ints("H" if asn_size == 2 else "I", body, at, 1)[0]
    at += 2 * asn_size + 2  # peer AS, local AS, interface index
    afi = _U16.unpack_from(body, at)[0]
    at += 2
    if afi == 1:
        peer = _ntop(_INET, body[at : at + 4])
        at += 8
    elif afi == 2:
        peer = _ntop(_INET6, body[at : at + 16])
        at += 32
    else:
        raise _Unusual
    if at > len(body):
        raise _Unusual
    if subtype in _STATE:
        if at + 4 > len(body):
            raise _Unusual
        old, new = _U16.unpack_from(body, at)[0], _U16.unpack_from(body, at + 2)[0]
        if new == ESTABLISHED:
            kind = Kind.PEER_UP
        elif old == ESTABLISHED:
            kind = Kind.PEER_DOWN
        else:
            return [], True
        return [Update(kind, timestamp, peer, peer_asn, source=source, collector=collector)], True
    return _update(body, at, timestamp, peer, peer_asn, collector, asn_size, source), False


class _Attributes:
    """The path attributes of one UPDATE, as :class:`mrt._Attributes` keeps them."""

    __slots__ = ("as4_path", "as_path", "communities", "large", "next_hop", "reach", "unreach")

    def __init__(self) -> None:
        self.as_path: list[AsPathElement] = []
        self.as4_path: list[AsPathElement] = []
        self.communities: tuple[int, ...] = ()
        self.large: tuple[tuple[int, int, int], ...] = ()
        self.next_hop = ""
        self.reach: list[tuple[str, str]] = []  # (prefix, next hop) from MP_REACH_NLRI
        self.unreach: list[str] = []

    def read(self, body: bytes, at: int, end: int, asn_size: int) -> None:
        while at < end:
            if at + 3 > end:
                raise _Unusual
            flags, code = body[at], body[at + 1]
            if flags & 0x10:  # extended length
                size = _U16.unpack_from(body, at + 2)[0]
                at += 4
            else:
                size = body[at + 2]
                at += 3
            stop = at + size
            if stop > end:
                raise _Unusual
            self._one(code, body, at, stop, asn_size)
            at = stop

    def _one(self, code: int, body: bytes, at: int, stop: int, asn_size: int) -> None:
        size = stop - at
        fixed = _FIXED.get(code)
        step = _STEPS.get(code)
        if fixed is not None:
            if size != fixed:
                raise _Unusual
        elif step is not None:
            if size % step:
                raise _Unusual
            if code == 8:
                self.communities = _ints("I", body, at, size // 4)
            elif code == 32:
                values = _ints("I", body, at, size // 4)
                self.large = tuple(zip(values[0::3], values[1::3], values[2::3], strict=True))
        elif code == 2:
            self.as_path = _segments(body, at, stop, asn_size)
        elif code == 17:
            self.as4_path = _segments(body, at, stop, 4)
        elif code == 3:
            if size == 4:
                self.next_hop = _ntop(_INET, body[at:stop])
            elif size == 16:
                self.next_hop = _ntop(_INET6, body[at:stop])
            # other sizes: mrtparse gives no value, which the reader ignores
        elif code == 7:  # AGGREGATOR: mrtparse reads a 2- or 4-byte ASN and an address
            if size not in (6, 8):
                raise _Unusual
        elif code == 14:
            self.reach.extend(_mp_reach(body, at, stop))
        elif code == 15:
            self.unreach.extend(_mp_unreach(body, at, stop))
        elif code == 26:
            # AIGP (RFC 7311): no detector reads it, and a malformed one is discarded
            # (RFC 7311 3.2); never left to mrtparse, whose decoder loops for ever on a
            # TLV shorter than its own header
            pass
        elif code == 128:  # ATTR_SET: left to mrtparse
            raise _Unusual

    def path(self) -> tuple[AsPathElement, ...]:
        if AS_TRANS in self.as_path:
            return _merge_as4(self.as_path, self.as4_path)
        return tuple(self.as_path)


def _update(
    body: bytes,
    start: int,
    timestamp: float,
    peer: str,
    peer_asn: int,
    collector: str,
    asn_size: int,
    source: str = SOURCE,
) -> list[Update]:
    """A BGP UPDATE message from ``start`` (its 16-byte marker) on."""
    if start + 19 > len(body):
        raise _Unusual
    length = _U16.unpack_from(body, start + 16)[0]
    end = start + length
    message_type = body[start + 18]
    if message_type == 4:  # KEEPALIVE: nothing in it mrtparse would read (or reject)
        return []
    if message_type != 2:  # OPEN, NOTIFICATION, ...: mrtparse checks those
        raise _Unusual
    if length < 23 or end > len(body):
        raise _Unusual
    at = start + 19
    withdrawn_length = _U16.unpack_from(body, at)[0]
    at += 2
    withdrawn = _prefixes(body, at, at + withdrawn_length, 1)
    at += withdrawn_length
    if at + 2 > end:
        raise _Unusual
    attributes_end = at + 2 + _U16.unpack_from(body, at)[0]
    if attributes_end > end:
        raise _Unusual
    attributes = _Attributes()
    attributes.read(body, at + 2, attributes_end, asn_size)
    announced = _prefixes(body, attributes_end, end, 1)

    path = attributes.path()
    communities, large, next_hop = attributes.communities, attributes.large, attributes.next_hop
    withdraw, announce = Kind.WITHDRAW, Kind.ANNOUNCE
    out = [
        _new(Update, (withdraw, timestamp, peer, peer_asn, p, (), (), "", source, collector, ()))
        for p in (*withdrawn, *attributes.unreach)
    ]
    out.extend(
        _new(
            Update,
            (
                announce,
                timestamp,
                peer,
                peer_asn,
                p,
                path,
                communities,
                hop,
                source,
                collector,
                large,
            ),
        )
        for p, hop in (
            *((p, next_hop) for p in announced),
            *((p, hop or next_hop) for p, hop in attributes.reach),
        )
    )
    return out


def _family(body: bytes, at: int) -> int:
    afi: int = _U16.unpack_from(body, at)[0]
    safi = body[at + 2]
    if afi not in (1, 2) or safi != 1:  # unicast only; mrtparse handles the rest
        raise _Unusual
    return afi


def _mp_reach(body: bytes, at: int, stop: int) -> list[tuple[str, str]]:
    afi = _family(body, at)
    hop_length = body[at + 3]
    at += 4
    if afi == 1:
        if hop_length != 4:
            raise _Unusual
        hop = _ntop(_INET, body[at : at + 4])
    else:
        if hop_length not in (16, 32):
            raise _Unusual
        hop = _ntop(_INET6, body[at : at + 16])
    at += hop_length + 1  # the next hop(s), then a reserved byte
    if at > stop:
        raise _Unusual
    return [(prefix, hop) for prefix in _prefixes(body, at, stop, afi)]


def _mp_unreach(body: bytes, at: int, stop: int) -> list[str]:
    afi = _family(body, at)
    return _prefixes(body, at + 3, stop, afi)
