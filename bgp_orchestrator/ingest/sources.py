"""File and stream sources: MRT and RIS Live JSONL replay, ExaBGP's API pipe.

A replay reads its file in chunks (a few hundred lines or records), parses each
chunk in one go and hands the CLI its updates, its dead letters and the position
it reached, so that per-message costs (awaits, progress updates, Kafka calls) are
paid once per chunk. ``Pacer`` throttles what is published to a rate or to the
recorded time.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import gzip
import time
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, NamedTuple, cast

from bgp_orchestrator.bgp.parsers import exabgp, mrt, rislive
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.ingest.shard import Shard

#: Lines of a RIS Live file, and records of an MRT file, read and parsed at once: a few
#: ms of work, so per-chunk costs are small, and few enough updates that they are still
#: in the CPU's caches when they are encoded (measured: 200 lines cost a quarter less
#: CPU than 500, and 500 less than 1,000).
JSONL_CHUNK = 200
MRT_CHUNK = 128


class Item(NamedTuple):
    updates: list[Update]
    dead: DeadLetter | None = None


class Chunk(NamedTuple):
    """What a chunk of a file gave: ``position`` is the last line (RIS Live) or record
    (MRT) it covers, numbered from 1; ``read`` how many it covers (all shards')."""

    updates: list[Update]
    dead: list[DeadLetter]
    position: int
    read: int


def _open_binary(path: Path) -> IO[bytes]:
    with path.open("rb") as f:
        head = f.read(3)
    if head.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    if head.startswith(b"BZh"):
        return cast(IO[bytes], bz2.open(path, "rb"))
    return path.open("rb")


def file_kind(path: Path) -> str:
    """'mrt' or 'rislive', from the content (JSON lines start with '{')."""
    try:
        with _open_binary(path) as f:
            first = f.read(1)
    except (OSError, EOFError) as exc:
        raise ConfigurationError("unreadable-input", f"cannot read {path}: {exc}") from None
    return "rislive" if first == b"{" else "mrt"


def replay_chunks(path: Path, *, start_at: int = 1, shard: Shard | None = None) -> Iterator[Chunk]:
    """The file as chunks, from line/record ``start_at`` on, only ``shard``'s part of it."""
    if not path.is_file():
        raise ConfigurationError("unreadable-input", f"{path} does not exist", "file", str(path))
    if start_at < 1:
        raise ConfigurationError(
            "invalid-start-at", "--start-at counts from 1", "start_at", start_at
        )
    if file_kind(path) == "rislive":
        return _rislive_chunks(path, start_at, shard)
    return _mrt_chunks(path, start_at, shard)


def _rislive_chunks(path: Path, start_at: int, shard: Shard | None) -> Iterator[Chunk]:
    """Lines are read as bytes; a line that is not valid JSON that way is read again
    as text with invalid UTF-8 replaced (which is how this reader always read files),
    so what is accepted, and the reasons given, are those of a text reader."""
    parse = rislive.parse_line
    owns = shard.owns_message if shard is not None else None
    with _open_binary(path) as f:
        number = 0
        broken: Exception | None = None
        try:
            number = sum(1 for _ in islice(f, start_at - 1))
        except (EOFError, OSError) as exc:
            broken = exc
        while broken is None:
            lines: list[bytes] = []
            try:
                lines.extend(islice(f, JSONL_CHUNK))  # keeps what it read if it fails
            except (EOFError, OSError) as exc:  # e.g. a gzip file cut short
                broken = exc
            if not lines and broken is None:
                return
            updates: list[Update] = []
            dead: list[DeadLetter] = []
            extend = updates.extend
            for line in lines:
                number += 1
                if owns is not None and not owns(line):
                    continue
                try:
                    extend(parse(line))
                except Malformed as exc:
                    text = line.decode("utf-8", "replace")
                    error = exc
                    if exc.code == "malformed-json":
                        if not text.strip():
                            continue  # blank lines are not messages
                        try:
                            extend(parse(text))
                            continue
                        except Malformed as again:
                            error = again
                    where = f"{path.name}:{number}"
                    dead.append(DeadLetter.from_error(error, "rislive-file", where, text))
            if broken is not None and (shard is None or shard.owns_position(number + 1)):
                reason = f"the file ends early after line {number}: {broken}"
                where = f"{path.name}:{number + 1}"
                dead.append(DeadLetter("truncated-input", reason, "rislive-file", where))
            yield Chunk(updates, dead, number, len(lines))


def _mrt_chunks(path: Path, start_at: int, shard: Shard | None) -> Iterator[Chunk]:
    collector = path.name
    if shard is not None and shard.by == "collector" and not shard.owns_text(collector):
        return  # one file is one collector: another shard's
    by_peer = shard if shard is not None and shard.by == "peer" else None
    records = mrt.read(
        path, collector, start_at=start_at, peers=by_peer.owns_text if by_peer else None
    )
    while True:
        batch = list(islice(records, MRT_CHUNK))
        if not batch:
            return
        updates: list[Update] = []
        dead: list[DeadLetter] = []
        for record in batch:
            if record.skipped:
                continue
            if record.error is not None:
                # a record whose peer was read is its shard's; others go by number
                if by_peer is None or (
                    by_peer.owns_text(record.peer)
                    if record.peer is not None
                    else by_peer.owns_position(record.position)
                ):
                    where = f"{path.name}#{record.position}"
                    dead.append(DeadLetter.from_error(record.error, "mrt", where))
            elif by_peer is None or record.peer is not None:
                updates.extend(record.updates)
            else:  # e.g. a RIB record: one entry per peer
                updates.extend(u for u in record.updates if by_peer.owns_update(u))
        yield Chunk(updates, dead, batch[-1].position, len(batch))


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
    """Throttle to ``rate`` updates/s, or to recorded time divided by ``speedup``.

    :meth:`slices` cuts a chunk of updates into the parts due at the same time
    (within ``tick`` seconds); :meth:`wait` sleeps until a part is due.
    """

    def __init__(
        self, rate: float | None = None, speedup: float | None = None, tick: float = 0.01
    ) -> None:
        if rate is not None and rate <= 0:
            raise ConfigurationError("invalid-rate", "--rate must be positive", "rate", rate)
        if speedup is not None and speedup <= 0:
            raise ConfigurationError("invalid-speedup", "--speedup must be positive")
        self.rate = rate
        self.speedup = speedup
        self.tick = tick
        self._start = time.monotonic()
        self._sent = 0
        self._first_ts: float | None = None

    @property
    def active(self) -> bool:
        return self.rate is not None or self.speedup is not None

    def slices(self, updates: list[Update]) -> list[tuple[float, list[Update]]]:
        """``(due, part)`` pairs (monotonic time) covering ``updates`` in order."""
        if not updates:
            return []
        if self.speedup is not None:
            out: list[tuple[float, list[Update]]] = []
            if self._first_ts is None:
                self._first_ts = updates[0].timestamp
            first, start, speedup = self._first_ts, self._start, self.speedup
            begin = 0
            due = start + (updates[0].timestamp - first) / speedup
            for i, update in enumerate(updates):
                at = start + (update.timestamp - first) / speedup
                if at - due >= self.tick:
                    out.append((due, updates[begin:i]))
                    begin, due = i, at
            out.append((due, updates[begin:]))
            self._sent += len(updates)
            return out
        if self.rate is not None:
            step = max(1, int(self.rate * self.tick))
            out = []
            for begin in range(0, len(updates), step):
                due = self._start + (self._sent + begin) / self.rate
                out.append((due, updates[begin : begin + step]))
            self._sent += len(updates)
            return out
        self._sent += len(updates)
        return [(0.0, updates)]

    @staticmethod
    async def wait(due: float, stop: asyncio.Event | None = None) -> bool:
        """Sleep until ``due``; False (at once) if ``stop`` is or gets set first."""
        if stop is not None and stop.is_set():
            return False
        delay = due - time.monotonic()
        if delay > 0.001:
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                    return False
        return True
