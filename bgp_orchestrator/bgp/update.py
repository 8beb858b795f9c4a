"""The one contract between BGP sources and detectors: the normalised update.

One :class:`Update` is one prefix announced or withdrawn by one peer (a BGP
UPDATE message with N prefixes becomes N updates sharing their attributes).
Session state changes travel as updates of kind ``PEER_UP`` / ``PEER_DOWN``
with an empty prefix.

``as_path`` is a tuple whose elements are ASNs (``int``) for AS_SEQUENCE
segments and sorted tuples of ASNs for AS_SET segments, so that
``(3356, 174, (64500, 64501))`` is "3356 174 {64500,64501}".
``communities`` holds standard communities as 32-bit integers
(``asn << 16 | value``); large communities as ``(global, local1, local2)``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

AsPathElement = int | tuple[int, ...]
AsPath = tuple[AsPathElement, ...]

NO_EXPORT = 0xFFFFFF01  # 65535:65281, RFC 1997
NO_ADVERTISE = 0xFFFFFF02  # 65535:65282


class Kind(IntEnum):
    ANNOUNCE = 1
    WITHDRAW = 2
    PEER_UP = 3
    PEER_DOWN = 4


class Update(NamedTuple):
    kind: Kind
    timestamp: float
    peer_address: str
    peer_asn: int
    prefix: str = ""
    as_path: AsPath = ()
    communities: tuple[int, ...] = ()
    next_hop: str = ""
    source: str = ""
    collector: str = ""
    large_communities: tuple[tuple[int, int, int], ...] = ()

    @property
    def peer_key(self) -> str:
        """Identifies the BGP session that sent the update (collector, peer address)."""
        return f"{self.collector}|{self.peer_address}"


def community(asn: int, value: int) -> int:
    return (asn << 16) | value


def community_text(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


def parse_community(text: str) -> int:
    """``"65535:65281"`` -> 0xFFFFFF01; also the well-known names."""
    names = {"no-export": NO_EXPORT, "no-advertise": NO_ADVERTISE}
    if text.lower() in names:
        return names[text.lower()]
    high, _, low = text.partition(":")
    a, b = int(high), int(low)
    if not (0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF):
        raise ValueError(f"community {text!r} out of range")
    return (a << 16) | b


def origin(path: AsPath) -> AsPathElement | None:
    """The origin element: an ASN, an AS_SET (tuple) or None for an empty path."""
    return path[-1] if path else None


def origin_asns(path: AsPath) -> tuple[int, ...]:
    """The possible origin ASNs (one, or the members of a final AS_SET)."""
    last = origin(path)
    if last is None:
        return ()
    return last if isinstance(last, tuple) else (last,)


def flat_asns(path: AsPath) -> list[int]:
    """Every ASN of the path, sets expanded (for bogon checks)."""
    out: list[int] = []
    for element in path:
        if isinstance(element, tuple):
            out.extend(element)
        else:
            out.append(element)
    return out


def dedup(path: AsPath) -> list[AsPathElement]:
    """The path without prepending (consecutive repeats removed)."""
    out: list[AsPathElement] = []
    for element in path:
        if not out or out[-1] != element:
            out.append(element)
    return out


def path_text(path: AsPath) -> str:
    return " ".join(
        "{" + ",".join(str(a) for a in e) + "}" if isinstance(e, tuple) else str(e) for e in path
    )
