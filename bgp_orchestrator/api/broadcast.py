"""Fans PostgreSQL ``bgpo_conflicts`` notifications out to live-stream subscribers.

One LISTEN connection per API process, opened when the first subscriber
arrives and re-opened with backoff if it drops; each subscriber gets a
bounded queue of its tenant's events (a slow client loses its stream, not the
others: it is told to reconnect and resumes from Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
import orjson

from bgp_orchestrator.storage.database import asyncpg_dsn

log = logging.getLogger(__name__)
CHANNEL = "bgpo_conflicts"


class Subscriber:
    def __init__(self, tenant_id: int, maxsize: int = 1000) -> None:
        self.tenant_id = tenant_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.overflowed = False


class ConflictBroadcaster:
    def __init__(self, dsn: str) -> None:
        self.dsn = asyncpg_dsn(dsn)
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, tenant_id: int) -> Subscriber:
        sub = Subscriber(tenant_id)
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _deliver(self, payload: str) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        for sub in list(self.subscribers):
            if event.get("tenant_id") != sub.tenant_id:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True

    async def _listen(self) -> None:
        delay = 1.0
        while self.subscribers:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                await conn.add_listener(CHANNEL, lambda *args: self._deliver(args[3]))
                delay = 1.0
                # Poll: both "no subscriber left" and "connection lost" end the loop.
                while self.subscribers and not conn.is_closed():  # noqa: ASYNC110
                    await asyncio.sleep(1.0)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("conflict stream listener lost PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def close(self) -> None:
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
