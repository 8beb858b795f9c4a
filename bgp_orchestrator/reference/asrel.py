"""AS relationships in CAIDA's serial-1 / serial-2 formats.

``as1|as2|-1`` means as1 is a provider of as2, ``as1|as2|0`` that they peer;
serial-2 adds a source column. ``1`` (siblings, same organisation) is accepted
for local override files. Files may be plain or bzip2/gzip-compressed; ``#``
lines are comments.
"""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path

from bgp_orchestrator.errors import ConfigurationError


class Rel(IntEnum):
    """The relationship of ``a`` to ``b`` in ``rel(a, b)``."""

    PROVIDER = 1  # a is a provider of b
    CUSTOMER = 2  # a is a customer of b
    PEER = 3
    SIBLING = 4


def _key(a: int, b: int) -> int:
    return (a << 32) | b


class Relationships:
    def __init__(self, links: Iterable[tuple[int, int, int]] = ()) -> None:
        self._rel: dict[int, Rel] = {}
        self._heavy: dict[int, frozenset[int]] = {}
        self.links = 0
        for a, b, code in links:
            self.add(a, b, code)

    def add(self, a: int, b: int, code: int) -> None:
        self._heavy.clear()
        if code == -1:
            self._rel[_key(a, b)] = Rel.PROVIDER
            self._rel[_key(b, a)] = Rel.CUSTOMER
        elif code == 0:
            self._rel[_key(a, b)] = self._rel[_key(b, a)] = Rel.PEER
        elif code == 1:
            self._rel[_key(a, b)] = self._rel[_key(b, a)] = Rel.SIBLING
        else:
            raise ValueError(f"relationship code {code}")
        self.links += 1

    def get(self, a: int, b: int) -> Rel | None:
        return self._rel.get(_key(a, b))

    def heavy_peers(self, degree: int) -> frozenset[int]:
        """ASes with more than ``degree`` peer links (open-peering networks); computed once
        per degree (it walks every link, far too slow for a detector's hot path)."""
        cached = self._heavy.get(degree)
        if cached is not None:
            return cached
        counts: dict[int, int] = {}
        for key, rel in self._rel.items():
            if rel == Rel.PEER:
                a = key >> 32
                counts[a] = counts.get(a, 0) + 1
        result = frozenset(a for a, n in counts.items() if n > degree)
        self._heavy[degree] = result
        return result

    def update(self, other: Relationships) -> None:
        """Overlay ``other`` (local knowledge wins over inferred data)."""
        self._rel.update(other._rel)
        self._heavy.clear()
        self.links += other.links

    def __len__(self) -> int:
        return self.links


def _open_text(path: Path) -> Iterable[str]:
    head = path.read_bytes()[:3]
    if head.startswith(b"BZh"):
        return bz2.open(path, "rt", encoding="utf-8")
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def parse_lines(lines: Iterable[str], name: str = "AS relationships") -> Relationships:
    rels = Relationships()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("|")
        if len(parts) not in (3, 4):
            raise ConfigurationError(
                "invalid-as-relationships",
                f"{name} line {number}: expected as1|as2|rel[|source], got {line[:80]!r}",
            )
        try:
            a, b, code = int(parts[0]), int(parts[1]), int(parts[2])
            rels.add(a, b, code)
        except ValueError:
            raise ConfigurationError(
                "invalid-as-relationships",
                f"{name} line {number}: {line[:80]!r} is not as1|as2|-1, 0 or 1",
            ) from None
    return rels


def load(path: str | Path) -> Relationships:
    path = Path(path)
    try:
        with _open_text(path) as f:  # type: ignore[attr-defined]
            return parse_lines(f, str(path))
    except OSError as exc:
        raise ConfigurationError(
            "as-relationships-unreadable", f"cannot read {path}: {exc}"
        ) from None
