"""MRT update and RIB dumps (RFC 6396) through ``mrtparse``: BGP4MP(_ET), TABLE_DUMP, TABLE_DUMP_V2.

:func:`read` yields one :class:`Record` per MRT record: its position, the
updates it holds, or the reason it could not be decoded (a corrupted record
is reported and skipped, the file goes on). 2-byte-ASN sessions have their
AS_PATH merged with AS4_PATH (RFC 6793) so AS_TRANS (23456) does not leak
into the detectors.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgp_orchestrator.bgp.parsers import bgp4mp
from bgp_orchestrator.bgp.parsers.common import Malformed, as_number, canonical_prefix
from bgp_orchestrator.bgp.update import AsPath, AsPathElement, Kind, Update, parse_community

SOURCE = "mrt"
AS_TRANS = 23456
ESTABLISHED = 6


@dataclass
class Record:
    position: int
    updates: list[Update] = field(default_factory=list)
    error: Malformed | None = None
    state_change: bool = False
    skipped: bool = False  # read but not decoded (see :func:`read`)
    peer: str | None = None  # the peer address read from the raw record, when it was


def _code(value: Any) -> int:
    """mrtparse writes enumerations as ``{code: name}``."""
    if isinstance(value, dict):
        return int(next(iter(value)))
    if isinstance(value, list):
        return int(value[0])
    return int(value)


def _timestamp(data: dict[str, Any]) -> float:
    ts = float(_code(data["timestamp"]))
    micro = data.get("microsecond_timestamp")
    return ts + micro / 1e6 if micro else ts


def _segments(value: list[dict[str, Any]]) -> list[AsPathElement]:
    out: list[AsPathElement] = []
    for segment in value:
        seg_type = _code(segment["type"])
        asns = [as_number(a) for a in segment["value"]]
        if seg_type == 1:  # AS_SET
            out.append(tuple(sorted(set(asns))))
        elif seg_type == 2:  # AS_SEQUENCE
            out.extend(asns)
        # 3, 4: confederation segments are local to the confederation: not part of the path
    return out


def merge_as4(as_path: list[AsPathElement], as4_path: list[AsPathElement]) -> AsPath:
    """RFC 6793 section 4.2.3: the leading AS_PATH entries, then AS4_PATH."""
    if not as4_path or len(as4_path) > len(as_path):
        return tuple(as_path)
    return tuple(as_path[: len(as_path) - len(as4_path)] + as4_path)


class _Attributes:
    __slots__ = ("as_path", "communities", "large", "next_hop", "reach", "unreach")

    def __init__(self, attributes: list[dict[str, Any]]) -> None:
        as_path: list[AsPathElement] = []
        as4: list[AsPathElement] = []
        self.communities: tuple[int, ...] = ()
        self.large: tuple[tuple[int, int, int], ...] = ()
        self.next_hop = ""
        self.reach: list[tuple[str, str]] = []  # (prefix, next hop) from MP_REACH
        self.unreach: list[str] = []
        for attr in attributes:
            code = _code(attr["type"])
            value: Any = attr.get("value") or []
            if code == 2:
                as_path = _segments(value)
            elif code == 17:
                as4 = _segments(value)
            elif code == 3 and value:
                self.next_hop = str(value)
            elif code == 8:
                self.communities = tuple(parse_community(c) for c in value)
            elif code == 32:
                self.large = tuple(
                    (int(a), int(b), int(c)) for a, b, c in (v.split(":") for v in value)
                )
            elif code == 14 and isinstance(value, dict):
                hops = value.get("next_hop") or []
                hop = str(hops[0]) if hops else ""
                for nlri in value.get("nlri", []):
                    self.reach.append((f"{nlri['prefix']}/{nlri['length']}", hop))
            elif code == 15 and isinstance(value, dict):
                for nlri in value.get("withdrawn_routes", []):
                    self.unreach.append(f"{nlri['prefix']}/{nlri['length']}")
        self.as_path = merge_as4(as_path, as4) if AS_TRANS in as_path else tuple(as_path)


def _bgp4mp(data: dict[str, Any], collector: str) -> tuple[list[Update], bool]:
    ts = _timestamp(data)
    peer = str(data["peer_ip"])
    peer_asn = as_number(data["peer_as"])
    if "old_state" in data:
        old, new = _code(data["old_state"]), _code(data["new_state"])
        if new == ESTABLISHED:
            return [
                Update(Kind.PEER_UP, ts, peer, peer_asn, source=SOURCE, collector=collector)
            ], True
        if old == ESTABLISHED:
            return [
                Update(Kind.PEER_DOWN, ts, peer, peer_asn, source=SOURCE, collector=collector)
            ], True
        return [], True
    message = data.get("bgp_message") or {}
    if _code(message.get("type", 0)) != 2:  # not an UPDATE (OPEN, KEEPALIVE, ...)
        return [], False
    attrs = _Attributes(message.get("path_attributes", []))
    out: list[Update] = []
    for nlri in message.get("withdrawn_routes", []):
        out.append(
            Update(
                Kind.WITHDRAW,
                ts,
                peer,
                peer_asn,
                canonical_prefix(f"{nlri['prefix']}/{nlri['length']}"),
                source=SOURCE,
                collector=collector,
            )
        )
    for prefix in attrs.unreach:
        out.append(
            Update(
                Kind.WITHDRAW,
                ts,
                peer,
                peer_asn,
                canonical_prefix(prefix),
                source=SOURCE,
                collector=collector,
            )
        )
    for nlri in message.get("nlri", []):
        out.append(
            Update(
                Kind.ANNOUNCE,
                ts,
                peer,
                peer_asn,
                canonical_prefix(f"{nlri['prefix']}/{nlri['length']}"),
                attrs.as_path,
                attrs.communities,
                attrs.next_hop,
                SOURCE,
                collector,
                attrs.large,
            )
        )
    for prefix, hop in attrs.reach:
        out.append(
            Update(
                Kind.ANNOUNCE,
                ts,
                peer,
                peer_asn,
                canonical_prefix(prefix),
                attrs.as_path,
                attrs.communities,
                hop or attrs.next_hop,
                SOURCE,
                collector,
                attrs.large,
            )
        )
    return out, False


def _table_dump(data: dict[str, Any], collector: str) -> list[Update]:
    attrs = _Attributes(data.get("path_attributes", []))
    prefix = canonical_prefix(f"{data['prefix']}/{data['length']}")
    return [
        Update(
            Kind.ANNOUNCE,
            _timestamp(data),
            str(data["peer_ip"]),
            as_number(data["peer_as"]),
            prefix,
            attrs.as_path,
            attrs.communities,
            attrs.next_hop,
            SOURCE,
            collector,
            attrs.large,
        )
    ]


def _table_dump_v2(
    data: dict[str, Any], peers: list[dict[str, Any]], collector: str
) -> list[Update]:
    if "peer_entries" in data:
        peers[:] = data["peer_entries"]
        return []
    if "rib_entries" not in data:
        return []
    if "prefix" in data:
        prefix = canonical_prefix(f"{data['prefix']}/{data['length']}")
    else:  # RIB_GENERIC
        nlri = data["nlri"][0]
        prefix = canonical_prefix(f"{nlri['prefix']}/{nlri['length']}")
    ts = _timestamp(data)
    out = []
    for entry in data["rib_entries"]:
        index = int(entry["peer_index"])
        if index >= len(peers):
            raise Malformed("corrupted-mrt", f"RIB entry names peer {index} not in the index table")
        peer = peers[index]
        attrs = _Attributes(entry.get("path_attributes", []))
        out.append(
            Update(
                Kind.ANNOUNCE,
                ts,
                str(peer["peer_ip"]),
                as_number(peer["peer_as"]),
                prefix,
                attrs.as_path,
                attrs.communities,
                attrs.next_hop or (attrs.reach[0][1] if attrs.reach else ""),
                SOURCE,
                collector,
                attrs.large,
            )
        )
    return out


_BGP4MP_AS2 = frozenset({0, 1, 6, 8, 10})  # subtypes whose ASNs take 2 bytes
_BGP4MP_AS4 = frozenset({4, 5, 7, 9, 11})
_FAMILIES = {b"\x00\x01": (socket.AF_INET, 4), b"\x00\x02": (socket.AF_INET6, 16)}
_PEER_INDEX_TABLE = (13, 1)


def record_peer(mrt_type: int, subtype: int, body: bytes) -> str | None:
    """The peer address of a BGP4MP or TABLE_DUMP record, read from its raw bytes as
    mrtparse would write it (None for other records, or when it cannot be read):
    lets a reader skip other peers' records without decoding them."""
    if mrt_type in (16, 17):  # BGP4MP, BGP4MP_ET (4 bytes of microseconds first)
        if subtype in _BGP4MP_AS2:
            at = (4 if mrt_type == 17 else 0) + 2 + 2 + 2
        elif subtype in _BGP4MP_AS4:
            at = (4 if mrt_type == 17 else 0) + 4 + 4 + 2
        else:
            return None
        family = _FAMILIES.get(body[at : at + 2])
        at += 2
    elif mrt_type == 12:  # TABLE_DUMP: view, sequence, prefix, length, status, time, peer
        family = {1: (socket.AF_INET, 4), 2: (socket.AF_INET6, 16)}.get(subtype)
        at = 2 + 2 + (family[1] if family else 0) + 1 + 1 + 4
    else:
        return None
    if family is None:
        return None
    raw = body[at : at + family[1]]
    return socket.inet_ntop(family[0], raw) if len(raw) == family[1] else None


def read(
    path: str | Path,
    collector: str = "",
    *,
    start_at: int = 1,
    peers: Callable[[str], bool] | None = None,
    fast: bool = True,
) -> Iterator[Record]:
    """Every record of an MRT file (plain, gzip or bzip2), in order.

    Plain BGP4MP updates and state changes are decoded by :mod:`.bgp4mp` (several times
    faster; ``fast=False`` turns it off), everything else by mrtparse.

    Records before ``start_at`` (numbered from 1), and with ``peers`` the BGP4MP and
    TABLE_DUMP records of peers it refuses, are read but not decoded: they come as
    ``Record(position, skipped=True)``. Peer index tables are always decoded (the RIB
    records after them refer to them). A decoded record whose peer was read from its
    raw bytes carries it in ``peer``.
    """
    import mrtparse  # type: ignore[import-untyped]

    collector = collector or Path(path).name
    reader = mrtparse.Reader(str(path))  # opens the file, plain or compressed
    source = reader.f
    peer_table: list[dict[str, Any]] = []
    position = 0
    try:
        while True:
            try:
                header, body, complete = _raw_record(source)
            except (EOFError, OSError, ValueError) as exc:
                yield Record(position, error=Malformed("truncated-mrt", f"file ends early: {exc}"))
                return
            if not header:
                return
            position += 1
            kind = (int.from_bytes(header[4:6], "big"), int.from_bytes(header[6:8], "big"))
            peer = None
            if complete and kind != _PEER_INDEX_TABLE:
                if position < start_at:
                    yield Record(position, skipped=True)
                    continue
                if peers is not None:
                    peer = record_peer(kind[0], kind[1], body)
                    if peer is not None and not peers(peer):
                        yield Record(position, skipped=True)
                        continue
            if complete and kind[0] in (16, 17) and position >= start_at and fast:
                decoded = bgp4mp.decode(
                    kind[0], kind[1], int.from_bytes(header[:4], "big"), body, collector
                )
                if decoded is not None:
                    yield Record(position, decoded[0], state_change=decoded[1], peer=peer)
                    continue
            # mrtparse decodes the record from exactly the bytes it would have read
            reader.f = io.BytesIO(header + body)
            reader.err = None  # mrtparse leaves the last error set on the reader
            try:
                entry = next(reader)
            except StopIteration:
                return
            except (EOFError, OSError, ValueError) as exc:
                yield Record(position, error=Malformed("truncated-mrt", f"file ends early: {exc}"))
                return
            record = _record(entry, position, peer_table, collector)
            if position < start_at:  # a peer index table before the start: kept, not given
                yield Record(position, skipped=True)
                continue
            record.peer = peer
            yield record
    finally:
        source.close()


def decode_record(record: bytes, collector: str, position: int = 0) -> Record:
    """One whole MRT record (header and body), decoded by mrtparse: for records the fast
    decoder does not take that come from elsewhere than a file (the BMP station wraps
    the BGP messages routers send in BGP4MP records). Peer index tables are not kept."""
    import mrtparse

    reader = mrtparse.Reader(io.BytesIO(record))
    try:
        entry = next(reader)
    except StopIteration:
        return Record(position, error=Malformed("truncated-mrt", "empty record"))
    except (EOFError, OSError, ValueError) as exc:
        return Record(position, error=Malformed("truncated-mrt", f"record ends early: {exc}"))
    return _record(entry, position, [], collector)


def _raw_record(source: Any) -> tuple[bytes, bytes, bool]:
    """The next record's 12-byte header and body, and whether both are whole."""
    header: bytes = source.read(12)
    length = int.from_bytes(header[8:12], "big") if len(header) == 12 else 0
    body: bytes = source.read(length) if length else b""
    return header, body, len(header) == 12 and len(body) == length


def _record(entry: Any, position: int, peers: list[dict[str, Any]], collector: str) -> Record:
    if entry.err:
        return Record(position, error=Malformed("corrupted-mrt", str(entry.err_msg)))
    data = entry.data
    try:
        mrt_type = _code(data["type"])
        if mrt_type in (16, 17):  # BGP4MP, BGP4MP_ET
            updates, state = _bgp4mp(data, collector)
            return Record(position, updates, state_change=state)
        if mrt_type == 12:  # TABLE_DUMP
            return Record(position, _table_dump(data, collector))
        if mrt_type == 13:  # TABLE_DUMP_V2
            return Record(position, _table_dump_v2(data, peers, collector))
        return Record(
            position,
            error=Malformed(
                "unsupported-mrt", f"MRT type {mrt_type} is not a BGP update or RIB type"
            ),
        )
    except Malformed as exc:
        return Record(position, error=exc)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return Record(
            position,
            error=Malformed(
                "corrupted-mrt",
                f"record {position} is not decodable: {type(exc).__name__}: {exc}",
            ),
        )
