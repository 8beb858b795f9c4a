"""A RIS Live websocket client that reconnects with backoff and never publishes a message twice.

RIS Live (https://ris-live.ripe.net) streams one JSON message per frame after
a ``ris_subscribe``. A dropped connection is retried with exponential backoff
(1 s, 2 s, ... 60 s, with jitter); messages the server sends again after a
reconnect are recognised by their ``id`` and skipped. With a :class:`Shard`,
only that shard's messages are parsed and handed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from bgp_orchestrator.bgp.parsers import rislive
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.ingest.shard import Shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    host: str | None = None
    peer: str | None = None
    prefix: str | None = None
    more_specific: bool = False
    less_specific: bool = False
    path: str | None = None
    include_peer_state: bool = True

    def messages(self) -> list[dict[str, Any]]:
        data: dict[str, Any] = {"type": "UPDATE"}
        for key in ("host", "peer", "prefix", "path"):
            value = getattr(self, key)
            if value:
                data[key] = value
        if self.prefix:
            data["moreSpecific"] = self.more_specific
            data["lessSpecific"] = self.less_specific
        out = [{"type": "ris_subscribe", "data": data}]
        if self.include_peer_state:
            state = {k: v for k, v in data.items() if k in ("host", "peer")}
            out.append({"type": "ris_subscribe", "data": {**state, "type": "RIS_PEER_STATE"}})
        return out


class SeenIds:
    """The ids of at least the last ``size`` messages (at most twice that), to drop
    repeats after a reconnect: two generations of sets, the older dropped when the
    younger fills up (a set lookup per message instead of an ordered dict's upkeep)."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._young: set[str] = set()
        self._old: set[str] = set()

    def add(self, message_id: str) -> bool:
        """True if the id is new."""
        if message_id in self._young or message_id in self._old:
            return False
        self._young.add(message_id)
        if len(self._young) >= self.size:
            self._old, self._young = self._young, set()
        return True


class Batch(NamedTuple):
    """What the frames received since the last batch gave."""

    updates: list[Update]
    dead: list[DeadLetter]
    frames: int


class RisLiveClient:
    """Receives frames in one task and hands them over in batches: whatever arrived
    while the caller published the previous batch (at most ``max_batch`` frames), so
    a busy feed costs one publish per batch and a quiet one loses no time waiting."""

    def __init__(
        self,
        url: str,
        subscription: Subscription,
        *,
        client_name: str = "bgp-orchestrator",
        max_backoff_s: float = 60.0,
        on_reconnect: Callable[[int, float], None] | None = None,
        shard: Shard | None = None,
        max_batch: int = 500,
    ) -> None:
        self.url = url
        self.subscription = subscription
        self.client_name = client_name
        self.max_backoff_s = max_backoff_s
        self.on_reconnect = on_reconnect
        self.shard = shard
        self.max_batch = max_batch
        self.seen = SeenIds()
        self.duplicates = 0
        self.connections = 0
        self.frames = 0
        self.others = 0  # frames of other shards

    async def batches(self, stop: asyncio.Event | None = None) -> AsyncIterator[Batch]:
        """Batches until ``stop`` is set (or forever), reconnecting with backoff."""
        stop = stop or asyncio.Event()
        frames: list[str | bytes] = []
        arrived = asyncio.Event()
        room = asyncio.Event()
        room.set()
        receiver = asyncio.create_task(self._receive(stop, frames, arrived, room))
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                if not frames:
                    arrived.clear()
                    waiter = asyncio.ensure_future(arrived.wait())
                    try:
                        await asyncio.wait(
                            [waiter, stopping, receiver], return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        waiter.cancel()
                if frames:
                    taken = frames[: self.max_batch]
                    del frames[: self.max_batch]
                    room.set()
                    yield self._batch(taken)
                if stop.is_set() or receiver.done():
                    if receiver.done() and not receiver.cancelled():
                        receiver.result()  # an unexpected error: raise it here
                    return
        finally:
            stopping.cancel()
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver

    async def _receive(
        self,
        stop: asyncio.Event,
        frames: list[str | bytes],
        arrived: asyncio.Event,
        room: asyncio.Event,
    ) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        attempt = 0
        while not stop.is_set():
            try:
                separator = "&" if "?" in self.url else "?"
                async with connect(
                    f"{self.url}{separator}client={self.client_name}",
                    open_timeout=10,
                    ping_interval=20,
                    max_size=16 * 1024 * 1024,
                    max_queue=4096,  # frames buffered while a batch is published
                ) as ws:
                    self.connections += 1
                    attempt = 0
                    for message in self.subscription.messages():
                        await ws.send(orjson.dumps(message).decode())
                    while not stop.is_set():
                        # bytes: orjson validates the UTF-8 itself, and a frame that
                        # is not UTF-8 becomes a dead letter instead of a dropped link
                        frames.append(await ws.recv(decode=False))
                        arrived.set()
                        if len(frames) >= 2 * self.max_batch:
                            room.clear()
                            await room.wait()
            except (OSError, WebSocketException, TimeoutError) as exc:
                attempt += 1
                delay = min(self.max_backoff_s, 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)  # noqa: S311
                log.warning("RIS Live connection lost (%s); reconnecting in %.1fs", exc, delay)
                if self.on_reconnect is not None:
                    self.on_reconnect(attempt, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    def _batch(self, frames: list[str | bytes]) -> Batch:
        updates: list[Update] = []
        dead: list[DeadLetter] = []
        owns = self.shard.owns_message if self.shard is not None else None
        seen = self.seen.add
        parse = rislive.parse_message
        self.frames += len(frames)
        for frame in frames:
            if owns is not None and not owns(frame):
                self.others += 1
                continue
            try:
                message = orjson.loads(frame)
            except orjson.JSONDecodeError as exc:
                dead.append(
                    DeadLetter("malformed-json", f"not JSON: {exc}", "rislive", self.url, frame)
                )
                continue
            data = message.get("data") if isinstance(message, dict) else None
            if isinstance(data, dict) and data.get("id") and not seen(str(data["id"])):
                self.duplicates += 1
                continue
            try:
                updates.extend(parse(message))
            except Malformed as exc:
                dead.append(DeadLetter.from_error(exc, "rislive", self.url, frame))
        return Batch(updates, dead, len(frames))
