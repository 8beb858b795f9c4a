"""ExaBGP 5 JSON API messages (``encoder json; receive { parsed; update; neighbor-changes; }``)."""

from __future__ import annotations

from typing import Any

import orjson

from bgp_orchestrator.bgp.parsers.common import (
    Malformed,
    as_number,
    as_set,
    canonical_prefix,
)
from bgp_orchestrator.bgp.update import AsPath, AsPathElement, Kind, Update

SOURCE = "exabgp"
# Message types that carry no route or session change: recognised and skipped.
IGNORED_TYPES = frozenset(
    {"open", "keepalive", "notification", "refresh", "operational", "signal", "negotiated", "fsm"}
)


def parse_line(line: str | bytes, collector: str = "exabgp") -> list[Update]:
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise Malformed("malformed-json", f"not JSON: {exc}") from None
    if not isinstance(message, dict) or "exabgp" not in message:
        raise Malformed("unknown-message", "not an ExaBGP JSON message")
    return parse_message(message, collector)


def _neighbor(message: dict[str, Any]) -> tuple[str, int, float]:
    try:
        neighbor = message["neighbor"]
        peer = str(neighbor["address"]["peer"])
        peer_asn = as_number(neighbor["asn"]["peer"])
        timestamp = float(message.get("time", 0.0))
    except (KeyError, TypeError, ValueError):
        raise Malformed(
            "malformed-message", "ExaBGP message without neighbor address/asn"
        ) from None
    return peer, peer_asn, timestamp


def _path(raw: Any) -> AsPath:
    """ExaBGP 5: ``{"0": {"element": "as-sequence", "value": [...]}, ...}``; 4: a list."""
    if isinstance(raw, list):
        return tuple(as_set(e) if isinstance(e, list) else as_number(e) for e in raw)
    if not isinstance(raw, dict):
        raise Malformed("invalid-as-path", f"unexpected as-path {raw!r}")
    out: list[AsPathElement] = []
    for key in sorted(raw, key=int):
        segment = raw[key]
        element = str(segment.get("element", ""))
        values = segment.get("value", [])
        if "set" in element:
            out.append(as_set(values))
        elif "sequence" in element:
            out.extend(as_number(v) for v in values)
        else:
            raise Malformed("invalid-as-path", f"unknown as-path element {element!r}")
    return tuple(out)


def parse_message(message: dict[str, Any], collector: str = "exabgp") -> list[Update]:
    msg_type = message.get("type")
    if msg_type == "state":
        peer, peer_asn, ts = _neighbor(message)
        state = message["neighbor"].get("state")
        if state == "up":
            kind = Kind.PEER_UP
        elif state == "down":
            kind = Kind.PEER_DOWN
        elif state == "connected":
            return []
        else:
            raise Malformed("unknown-peer-state", f"unknown ExaBGP state {state!r}")
        return [Update(kind, ts, peer, peer_asn, source=SOURCE, collector=collector)]
    if msg_type in IGNORED_TYPES:
        return []
    if msg_type != "update":
        raise Malformed("unknown-message", f"unknown ExaBGP message type {msg_type!r}")

    peer, peer_asn, ts = _neighbor(message)
    update = ((message["neighbor"].get("message") or {}).get("update")) or {}
    if not isinstance(update, dict):
        raise Malformed("malformed-message", "update is not an object")
    attributes = update.get("attribute") or {}
    path = _path(attributes.get("as-path", []))
    try:
        communities = tuple((int(a) << 16) | int(b) for a, b in attributes.get("community", []))
        large = tuple((int(a), int(b), int(c)) for a, b, c in attributes.get("large-community", []))
    except (TypeError, ValueError):
        raise Malformed("invalid-community", "bad community attribute") from None
    out: list[Update] = []
    for family, by_next_hop in (update.get("announce") or {}).items():
        if "unicast" not in family:
            continue
        for next_hop, nlris in by_next_hop.items():
            for nlri in nlris:
                prefix = canonical_prefix(nlri.get("nlri") if isinstance(nlri, dict) else nlri)
                out.append(
                    Update(
                        Kind.ANNOUNCE,
                        ts,
                        peer,
                        peer_asn,
                        prefix,
                        path,
                        communities,
                        str(next_hop),
                        SOURCE,
                        collector,
                        large,
                    )
                )
    for family, nlris in (update.get("withdraw") or {}).items():
        if "unicast" not in family:
            continue
        for nlri in nlris:
            prefix = canonical_prefix(nlri.get("nlri") if isinstance(nlri, dict) else nlri)
            out.append(
                Update(
                    Kind.WITHDRAW, ts, peer, peer_asn, prefix, source=SOURCE, collector=collector
                )
            )
    return out
