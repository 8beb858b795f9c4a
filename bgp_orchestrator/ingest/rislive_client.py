"""A RIS Live websocket client that reconnects with backoff and never publishes a message twice.

RIS Live (https://ris-live.ripe.net) streams one JSON message per frame after
a ``ris_subscribe``. A dropped connection is retried with exponential backoff
(1 s, 2 s, ... 60 s, with jitter); messages the server sends again after a
reconnect are recognised by their ``id`` and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bgp_orchestrator.bgp.parsers import rislive
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.ingest.sources import Item

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
    """The ids of the last ``size`` messages, to drop repeats after a reconnect."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, message_id: str) -> bool:
        """True if the id is new."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


class RisLiveClient:
    def __init__(
        self,
        url: str,
        subscription: Subscription,
        *,
        client_name: str = "bgp-orchestrator",
        max_backoff_s: float = 60.0,
        on_reconnect: Callable[[int, float], None] | None = None,
    ) -> None:
        self.url = url
        self.subscription = subscription
        self.client_name = client_name
        self.max_backoff_s = max_backoff_s
        self.on_reconnect = on_reconnect
        self.seen = SeenIds()
        self.duplicates = 0
        self.connections = 0

    async def items(self, stop: asyncio.Event | None = None) -> AsyncIterator[Item]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        attempt = 0
        while stop is None or not stop.is_set():
            try:
                separator = "&" if "?" in self.url else "?"
                async with connect(
                    f"{self.url}{separator}client={self.client_name}",
                    open_timeout=10,
                    ping_interval=20,
                    max_size=16 * 1024 * 1024,
                ) as ws:
                    self.connections += 1
                    attempt = 0
                    for message in self.subscription.messages():
                        await ws.send(orjson.dumps(message).decode())
                    async for frame in ws:
                        item = self._item(frame)
                        if item is not None:
                            yield item
                        if stop is not None and stop.is_set():
                            return
            except (OSError, WebSocketException, TimeoutError) as exc:
                attempt += 1
                delay = min(self.max_backoff_s, 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)  # noqa: S311
                log.warning("RIS Live connection lost (%s); reconnecting in %.1fs", exc, delay)
                if self.on_reconnect is not None:
                    self.on_reconnect(attempt, delay)
                await asyncio.sleep(delay)

    def _item(self, frame: str | bytes) -> Item | None:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return Item(
                [], DeadLetter("malformed-json", f"not JSON: {exc}", "rislive", self.url, frame)
            )
        data = message.get("data") if isinstance(message, dict) else None
        if isinstance(data, dict) and data.get("id") and not self.seen.add(str(data["id"])):
            self.duplicates += 1
            return None
        try:
            return Item(rislive.parse_message(message))
        except Malformed as exc:
            return Item(
                [],
                DeadLetter.from_error(exc, "rislive", self.url, frame),
            )
