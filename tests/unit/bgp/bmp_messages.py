"""Builders of BMP (RFC 7854, RFC 9069) and BGP messages for the tests, byte by byte."""

from __future__ import annotations

import ipaddress
import socket
import struct

MARKER = b"\xff" * 16
TS = 1_700_000_000


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def bmp(kind: int, body: bytes, version: int = 3, length: int | None = None) -> bytes:
    return (
        bytes([version]) + u32(6 + len(body) if length is None else length) + bytes([kind]) + body
    )


def per_peer(
    address: str = "192.0.2.1",
    asn: int = 64500,
    *,
    peer_type: int = 0,
    flags: int = 0,
    rd: bytes = bytes(8),
    bgp_id: str = "10.0.0.1",
    seconds: int = TS,
    micro: int = 0,
) -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        flags |= 0x80
        raw = ip.packed
    else:
        raw = bytes(12) + ip.packed
    return (
        bytes([peer_type, flags])
        + rd
        + raw
        + u32(asn)
        + socket.inet_aton(bgp_id)
        + u32(seconds)
        + u32(micro)
    )


def attribute(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + u16(len(value)) + value
    return bytes([flags, code, len(value)]) + value


def as_path(*asns: int, size: int = 4, code: int = 2) -> bytes:
    packed = b"".join(a.to_bytes(size, "big") for a in asns)
    return attribute(code, bytes([2, len(asns)]) + packed, 0x40 if code == 2 else 0xC0)


def origin() -> bytes:
    return attribute(1, b"\x00")


def next_hop(address: str) -> bytes:
    return attribute(3, socket.inet_aton(address))


def communities(*values: tuple[int, int]) -> bytes:
    return attribute(8, b"".join(u16(a) + u16(b) for a, b in values), 0xC0)


def nlri(prefix: str, path_id: int | None = None) -> bytes:
    net = ipaddress.ip_network(prefix)
    size = (net.prefixlen + 7) // 8
    head = b"" if path_id is None else u32(path_id)
    return head + bytes([net.prefixlen]) + net.network_address.packed[:size]


def mp_reach_v6(hop: str, *prefixes: str) -> bytes:
    value = u16(2) + b"\x01" + b"\x10" + ipaddress.ip_address(hop).packed + b"\x00"
    return attribute(14, value + b"".join(nlri(p) for p in prefixes), 0x80)


def mp_unreach_v6(*prefixes: str) -> bytes:
    return attribute(15, u16(2) + b"\x01" + b"".join(nlri(p) for p in prefixes), 0x80)


def bgp(kind: int, body: bytes) -> bytes:
    return MARKER + u16(19 + len(body)) + bytes([kind]) + body


def update(withdrawn: bytes = b"", attributes: bytes = b"", announced: bytes = b"") -> bytes:
    return bgp(2, u16(len(withdrawn)) + withdrawn + u16(len(attributes)) + attributes + announced)


def open_message(asn: int, bgp_id: str, capabilities: bytes = b"") -> bytes:
    my_as = asn if asn <= 0xFFFF else 23456
    caps = capability(65, u32(asn)) + capabilities
    params = bytes([2, len(caps)]) + caps
    return bgp(
        1,
        b"\x04" + u16(my_as) + u16(180) + socket.inet_aton(bgp_id) + bytes([len(params)]) + params,
    )


def capability(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def add_path(afi: int = 1, safi: int = 1, bits: int = 3) -> bytes:
    return capability(69, u16(afi) + bytes([safi, bits]))


def route_monitoring(header: bytes, pdu: bytes) -> bytes:
    return bmp(0, header + pdu)


def peer_up(
    header: bytes,
    local_asn: int = 65010,
    peer_asn: int = 64500,
    *,
    sent_caps: bytes = b"",
    received_caps: bytes = b"",
    tlvs: bytes = b"",
) -> bytes:
    body = (
        header
        + bytes(12)
        + socket.inet_aton("192.0.2.254")
        + u16(179)
        + u16(40000)
        + open_message(local_asn, "10.0.0.254", sent_caps)
        + open_message(peer_asn, "10.0.0.1", received_caps)
        + tlvs
    )
    return bmp(3, body)


def peer_down(header: bytes, reason: int = 2, data: bytes = b"\x00\x18") -> bytes:
    return bmp(2, header + bytes([reason]) + data)


def tlv(kind: int, value: bytes) -> bytes:
    return u16(kind) + u16(len(value)) + value


def initiation(sys_name: str = "r1", sys_descr: str = "test router") -> bytes:
    return bmp(4, tlv(1, sys_descr.encode()) + tlv(2, sys_name.encode()))


def termination(reason: int = 0) -> bytes:
    return bmp(5, tlv(0, b"bye") + tlv(1, u16(reason)))


def statistics(header: bytes, *counters: bytes, count: int | None = None) -> bytes:
    return bmp(1, header + u32(len(counters) if count is None else count) + b"".join(counters))
