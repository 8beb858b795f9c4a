"""Sharing one feed between ingest processes: ``--shard K/N``, by peer or by collector.

Every process reads the whole feed and keeps what its shard owns, so N processes
with shards 1/N ... N/N publish together exactly what one process would, and
each peer's (or collector's) updates keep their order because one process
carries them all. Ownership is a stable hash (CRC-32) of the peer address, or
of the collector name, as the parsers write it into
:attr:`~bgp_orchestrator.bgp.update.Update.peer_address` /
:attr:`~bgp_orchestrator.bgp.update.Update.collector`. Input that names neither
(a line that is not JSON, a corrupted MRT record) is owned by the hash of its
bytes or its record number, so that exactly one shard reports it.

Deciding must cost far less than parsing a line of another shard: a RIS Live
line's key is found with one regular-expression search when the line is plain
(ASCII, no escapes, the key's field named exactly once); only other lines are
parsed to find it.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal

import orjson

from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.errors import ConfigurationError

ShardBy = Literal["peer", "collector"]
_FIELDS: dict[str, tuple[str, bytes, re.Pattern[bytes]]] = {
    # shard by -> (RIS Live field, the field's name as a JSON token, its string value)
    "peer": ("peer", b'"peer"', re.compile(rb'"peer"\s*:\s*"([^"]*)"')),
    "collector": ("host", b'"host"', re.compile(rb'"host"\s*:\s*"([^"]*)"')),
}


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int
    by: ShardBy = "peer"

    @classmethod
    def parse(cls, text: str, by: str = "peer") -> Shard:
        """``"2/4"`` -> Shard(2, 4); ConfigurationError naming the option otherwise."""
        index_text, sep, count_text = text.partition("/")
        if not (sep and index_text.strip().isdigit() and count_text.strip().isdigit()):
            raise ConfigurationError(
                "invalid-shard", f"--shard takes K/N, e.g. 2/4, not {text!r}", "shard", text
            )
        index, count = int(index_text), int(count_text)
        if not 1 <= index <= count:
            raise ConfigurationError(
                "invalid-shard",
                f"--shard {text}: K must be between 1 and N (shards are numbered from 1)",
                "shard",
                text,
            )
        if by not in _FIELDS:
            raise ConfigurationError(
                "invalid-shard-by", f"--shard-by is peer or collector, not {by!r}", "shard_by", by
            )
        return cls(index, count, by)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns_key(self, key: bytes) -> bool:
        return zlib.crc32(key) % self.count == self.index - 1

    def owns_text(self, key: str) -> bool:
        return self.owns_key(key.encode("utf-8", "surrogatepass"))

    def owns_update(self, update: Update) -> bool:
        return self.owns_text(update.peer_address if self.by == "peer" else update.collector)

    def owns_position(self, position: int) -> bool:
        """For input that names no peer or collector and has a record number."""
        return (position - 1) % self.count == self.index - 1

    def owns_message(self, line: str | bytes) -> bool:
        """Whether a RIS Live line or websocket frame is this shard's."""
        data = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
        key = message_key(data, self.by)
        return self.owns_key(data if key is None else key)


def message_key(line: bytes, by: str = "peer") -> bytes | None:
    """The UTF-8 of ``str(data["peer"])`` (or ``str(data.get("host", ""))``) of a RIS Live
    message, as the parser would read it; None if the line holds no such message."""
    field, token, pattern = _FIELDS[by]
    if line.isascii() and b"\\" not in line:
        # Without escapes every '"peer"' in valid JSON is a whole string token, and
        # with exactly one of them it can only be data's own key (else data has none
        # and the line yields no update, so any owner will do).
        found = line.count(token)
        if found == 1:
            match = pattern.search(line)
            if match is not None:
                return match.group(1)
        elif found == 0:  # no such field at all
            return b"" if by == "collector" else None
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError:
        if line.isascii():
            return None
        try:  # what a replay reads: invalid UTF-8 replaced, as text files are read
            message = orjson.loads(line.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, dict):
        return None
    if by == "collector":
        return str(data.get(field, "")).encode("utf-8", "surrogatepass")
    if field not in data:
        return None
    return str(data[field]).encode("utf-8", "surrogatepass")
