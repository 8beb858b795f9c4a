"""RIPE RIS Live messages (``ris_message`` exactly as the websocket service sends it).

This is the hot path of ``bgpo ingest rislive`` and of RIS Live replays (tens of
thousands of messages a second on one core), so the common case is written for
speed: updates are built as plain tuples of the :class:`Update` layout, prefixes go
through the cache of :func:`canonical_prefix`, and paths and communities made of
plain in-range integers are checked in bulk. Anything unusual falls back to the
general checks, which accept and reject exactly what they always did.
"""

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

_ANNOUNCE = Kind.ANNOUNCE
_WITHDRAW = Kind.WITHDRAW
_new = tuple.__new__  # Update(...) field by field, without NamedTuple's keyword handling


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
    if kind != "ris_message":
        if kind == "ris_error":
            detail = (message.get("data") or {}).get("message", "")
            raise Malformed("ris-error", f"RIS Live reported an error: {detail}")
        raise Malformed("unknown-message", f"unknown RIS Live message type {kind!r}")
    data = message.get("data")
    if not isinstance(data, dict):
        raise Malformed("malformed-message", "ris_message without a data object")
    return parse_data(data)


def _communities(raw: Any) -> tuple[int, ...]:
    try:
        return tuple(
            [
                (a << 16) | b
                if type(a) is int and type(b) is int and 0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF
                else parse_community(f"{a}:{b}")
                for a, b in raw
            ]
        )
    except (TypeError, ValueError):
        raise Malformed("invalid-community", f"bad community list {raw!r}") from None


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
    if msg_type != "UPDATE":
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
        raise Malformed("unknown-message", f"unknown ris_message type {msg_type!r}")

    path = path_from_list(data.get("path", []))
    raw_communities = data.get("community", []) or []
    communities = _communities(raw_communities) if raw_communities else ()
    out: list[Update] = []
    append = out.append
    try:
        for group in data.get("announcements", []) or []:
            next_hop = str(group.get("next_hop", ""))
            for prefix in group.get("prefixes", []) or []:
                append(
                    _new(
                        Update,
                        (
                            _ANNOUNCE,
                            timestamp,
                            peer,
                            peer_asn,
                            canonical_prefix(prefix),
                            path,
                            communities,
                            next_hop,
                            SOURCE,
                            collector,
                            (),
                        ),
                    )
                )
        for prefix in data.get("withdrawals", []) or []:
            append(
                _new(
                    Update,
                    (
                        _WITHDRAW,
                        timestamp,
                        peer,
                        peer_asn,
                        canonical_prefix(prefix),
                        (),
                        (),
                        "",
                        SOURCE,
                        collector,
                        (),
                    ),
                )
            )
    except (AttributeError, TypeError):
        # e.g. "announcements": [5] or "withdrawals": 7: once an uncaught crash
        raise Malformed(
            "malformed-message",
            "announcements must be a list of {next_hop, prefixes: [...]} objects "
            "and withdrawals a list of prefixes",
        ) from None
    return out
