"""File and stream sources: MRT and RIS Live JSONL replay, ExaBGP's API pipe.

Each source yields ``(updates, dead_letter)`` items; the CLI publishes them,
throttled by ``Pacer``.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from bgp_orchestrator.bgp.parsers import exabgp, mrt, rislive
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.ingest.deadletter import DeadLetter


class Item(NamedTuple):
    updates: list[Update]
    dead: DeadLetter | None = None


def _open_text(path: Path) -> IO[str]:
    head = path.read_bytes()[:3]
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if head.startswith(b"BZh"):
        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def file_kind(path: Path) -> str:
    """'mrt' or 'rislive', from the content (JSON lines start with '{')."""
    try:
        with _open_text(path) as f:
            first = f.read(1)
    except (OSError, EOFError) as exc:
        raise ConfigurationError("unreadable-input", f"cannot read {path}: {exc}") from None
    except UnicodeDecodeError:
        return "mrt"
    return "rislive" if first == "{" else "mrt"


def replay_file(path: Path) -> Iterator[Item]:
    if not path.is_file():
        raise ConfigurationError("unreadable-input", f"{path} does not exist", "file", str(path))
    if file_kind(path) == "rislive":
        with _open_text(path) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield Item(rislive.parse_line(line))
                except Malformed as exc:
                    yield Item(
                        [],
                        DeadLetter.from_error(exc, "rislive-file", f"{path.name}:{number}", line),
                    )
        return
    for record in mrt.read(path):
        if record.error is not None:
            yield Item(
                [], DeadLetter.from_error(record.error, "mrt", f"{path.name}#{record.position}")
            )
        else:
            yield Item(record.updates)


async def exabgp_stdin(stream: asyncio.StreamReader, collector: str) -> AsyncIterator[Item]:
    """ExaBGP's API process side: one JSON message per line on stdin."""
    number = 0
    while True:
        line = await stream.readline()
        if not line:
            return
        number += 1
        text = line.strip()
        if not text:
            continue
        try:
            yield Item(exabgp.parse_line(text, collector))
        except Malformed as exc:
            yield Item([], DeadLetter.from_error(exc, "exabgp", f"stdin:{number}", text))


class Pacer:
    """Throttle to ``rate`` updates/s, or to recorded time divided by ``speedup``."""

    def __init__(self, rate: float | None = None, speedup: float | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ConfigurationError("invalid-rate", "--rate must be positive", "rate", rate)
        if speedup is not None and speedup <= 0:
            raise ConfigurationError("invalid-speedup", "--speedup must be positive")
        self.rate = rate
        self.speedup = speedup
        self._start = time.monotonic()
        self._sent = 0
        self._first_ts: float | None = None

    async def wait(self, updates: list[Update]) -> None:
        if not updates:
            return
        if self.speedup is not None:
            ts = updates[0].timestamp
            if self._first_ts is None:
                self._first_ts = ts
            due = self._start + (ts - self._first_ts) / self.speedup
        elif self.rate is not None:
            due = self._start + self._sent / self.rate
        else:
            due = 0.0
        self._sent += len(updates)
        delay = due - time.monotonic()
        if delay > 0.001:
            await asyncio.sleep(delay)
