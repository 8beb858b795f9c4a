"""MRT update and RIB dumps (RFC 6396) through ``mrtparse``: BGP4MP(_ET), TABLE_DUMP, TABLE_DUMP_V2.

:func:`read` yields one :class:`Record` per MRT record: its position, the
updates it holds, or the reason it could not be decoded (a corrupted record
is reported and skipped, the file goes on). 2-byte-ASN sessions have their
AS_PATH merged with AS4_PATH (RFC 6793) so AS_TRANS (23456) does not leak
into the detectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def read(path: str | Path, collector: str = "") -> Iterator[Record]:
    """Every record of an MRT file (plain, gzip or bzip2), in order."""
    import mrtparse  # type: ignore[import-untyped]

    collector = collector or Path(path).name
    reader = mrtparse.Reader(str(path))
    peers: list[dict[str, Any]] = []
    position = 0
    while True:
        reader.err = None  # mrtparse leaves the last error set on the reader
        try:
            entry = next(reader)
        except StopIteration:
            return
        except (EOFError, OSError, ValueError) as exc:
            yield Record(position, error=Malformed("truncated-mrt", f"file ends early: {exc}"))
            return
        position += 1
        if entry.err:
            yield Record(position, error=Malformed("corrupted-mrt", str(entry.err_msg)))
            continue
        data = entry.data
        try:
            mrt_type = _code(data["type"])
            if mrt_type in (16, 17):  # BGP4MP, BGP4MP_ET
                updates, state = _bgp4mp(data, collector)
                yield Record(position, updates, state_change=state)
            elif mrt_type == 12:  # TABLE_DUMP
                yield Record(position, _table_dump(data, collector))
            elif mrt_type == 13:  # TABLE_DUMP_V2
                yield Record(position, _table_dump_v2(data, peers, collector))
            else:
                yield Record(
                    position,
                    error=Malformed(
                        "unsupported-mrt", f"MRT type {mrt_type} is not a BGP update or RIB type"
                    ),
                )
        except Malformed as exc:
            yield Record(position, error=exc)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            yield Record(
                position,
                error=Malformed(
                    "corrupted-mrt",
                    f"record {position} is not decodable: {type(exc).__name__}: {exc}",
                ),
            )
