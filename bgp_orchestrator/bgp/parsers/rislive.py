"""RIPE RIS Live messages (``ris_message`` exactly as the websocket service sends it)."""

from __future__ import annotations

from typing import Any

import orjson

from bgp_orchestrator.bgp.parsers.common import (
    Malformed,
    as_number,
    canonical_prefix,
    path_from_list,
)
from bgp_orchestrator.bgp.update import Kind, Update, parse_community

SOURCE = "rislive"
# Message types RIS Live sends that carry no routes: recognised and skipped.
IGNORED_TYPES = frozenset({"OPEN", "NOTIFICATION", "KEEPALIVE"})


def parse_line(line: str | bytes) -> list[Update]:
    """One JSON line of a RIS Live stream (or one websocket frame) -> updates."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise Malformed("malformed-json", f"not JSON: {exc}") from None
    return parse_message(message)


def parse_message(message: Any) -> list[Update]:
    if not isinstance(message, dict):
        raise Malformed("unknown-message", "a RIS Live message must be a JSON object")
    kind = message.get("type")
    if kind == "ris_error":
        detail = (message.get("data") or {}).get("message", "")
        raise Malformed("ris-error", f"RIS Live reported an error: {detail}")
    if kind != "ris_message":
        raise Malformed("unknown-message", f"unknown RIS Live message type {kind!r}")
    data = message.get("data")
    if not isinstance(data, dict):
        raise Malformed("malformed-message", "ris_message without a data object")
    return parse_data(data)


def parse_data(data: dict[str, Any]) -> list[Update]:
    msg_type = data.get("type")
    try:
        timestamp = float(data["timestamp"])
        peer = str(data["peer"])
        peer_asn = as_number(data["peer_asn"])
    except (KeyError, TypeError, ValueError):
        raise Malformed(
            "malformed-message", "ris_message lacks a valid timestamp, peer or peer_asn"
        ) from None
    collector = str(data.get("host", ""))
    if msg_type == "RIS_PEER_STATE":
        state = data.get("state")
        if state == "down":
            kind = Kind.PEER_DOWN
        elif state in ("connected", "up", "established"):
            kind = Kind.PEER_UP
        else:
            raise Malformed("unknown-peer-state", f"unknown RIS_PEER_STATE {state!r}")
        return [Update(kind, timestamp, peer, peer_asn, source=SOURCE, collector=collector)]
    if msg_type in IGNORED_TYPES:
        return []
    if msg_type != "UPDATE":
        raise Malformed("unknown-message", f"unknown ris_message type {msg_type!r}")

    path = path_from_list(data.get("path", []))
    try:
        communities = tuple(parse_community(f"{a}:{b}") for a, b in data.get("community", []) or [])
    except (TypeError, ValueError):
        raise Malformed(
            "invalid-community", f"bad community list {data.get('community')!r}"
        ) from None
    out: list[Update] = []
    for group in data.get("announcements", []) or []:
        next_hop = str(group.get("next_hop", ""))
        for prefix in group.get("prefixes", []) or []:
            out.append(
                Update(
                    Kind.ANNOUNCE,
                    timestamp,
                    peer,
                    peer_asn,
                    canonical_prefix(prefix),
                    path,
                    communities,
                    next_hop,
                    SOURCE,
                    collector,
                )
            )
    for prefix in data.get("withdrawals", []) or []:
        out.append(
            Update(
                Kind.WITHDRAW,
                timestamp,
                peer,
                peer_asn,
                canonical_prefix(prefix),
                source=SOURCE,
                collector=collector,
            )
        )
    return out
