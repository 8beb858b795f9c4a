"""The live conflict stream of an API process, read from the outbox in id order.

The outbox (``conflict_events``) is the source of truth; a NOTIFY on
``bgpo_conflicts`` only wakes the reader up. One connection per API process
LISTENs and reads (opened when the first subscriber arrives, re-opened with
backoff when it drops). Every subscriber holds a cursor, ``position``: all of
its tenant's events up to that id have been handed to it. Each read takes the
events after the cursor from the table, so events committed while the
connection was away are simply read after the reconnect, before newer ones,
and a ``Last-Event-ID`` is just a starting cursor: nothing is lost, nothing is
handed over twice, and every subscriber sees its events in id order.

Ids are allocated when a transaction inserts an event but become visible
when it commits, so they can appear out of order (11 committed while 10 is
still in flight); a reader that moved its cursor past 11 would skip 10 for
good. Events are therefore handed out only up to a *frontier* below which no
id can still appear: before each read the reader notes the sequence's last
value ``L`` and then a snapshot; once every transaction in progress in that
snapshot has ended, every id up to ``L`` is either visible or never will be.
A transaction that stays open longer than ``max_hold_s`` stops holding the
stream back (counted in ``forced_frontiers`` and logged).

A subscriber's queue is bounded; the reader hands it only what fits and
reads the rest when it has drained (a client catching up on a long replay is
paced, not dropped). One that keeps a full queue for ``slow_client_s`` is
marked ``overflowed``: the stream tells it to reconnect, and it resumes from
its Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from bgp_orchestrator.service import Backoff
from bgp_orchestrator.storage import conflicts as store
from bgp_orchestrator.storage.database import asyncpg_dsn

log = logging.getLogger(__name__)
CHANNEL = "bgpo_conflicts"
#: The last id allocated in the outbox (its identity sequence; cache 1, so exact).
LAST_VALUE = "SELECT last_value, is_called FROM conflict_events_id_seq"
_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ConnectionError)


class Subscriber:
    """One stream client: its tenant, its cursor and a bounded queue of events."""

    def __init__(
        self, tenant_id: int, after: int | None, maxsize: int, wake: Callable[[], None]
    ) -> None:
        self.tenant_id = tenant_id
        #: Every event of the tenant with an id up to this one was handed over (None: not
        #: placed yet; the reader starts it at its frontier, i.e. "from now on").
        self.position = after
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.overflowed = False
        self.behind = False  # events were left unread for lack of room
        self.full_since: float | None = None
        self._wake = wake

    async def get(self) -> dict[str, Any]:
        """The next event (``id``, ``event``, ``conflict``); asks for more once half drained."""
        item = await self.queue.get()
        if self.behind and self.queue.qsize() <= self.queue.maxsize // 2:
            self.behind = False
            self._wake()
        return item


@dataclass
class _Mark:
    """The sequence's last value, then the transactions in progress right after."""

    last_value: int
    in_progress: frozenset[int]
    taken_at: float


@dataclass
class BroadcastStats:
    connects: int = 0
    connection_losses: int = 0
    reads: int = 0
    events: int = 0
    forced_frontiers: int = 0
    overflows: int = 0


def parse_snapshot(text: str) -> frozenset[int]:
    """The in-progress transaction ids of a ``pg_snapshot`` (``xmin:xmax:xip,...``)."""
    xip = text.split(":")[2]
    return frozenset(int(x) for x in xip.split(",") if x)


class ConflictBroadcaster:
    def __init__(
        self,
        dsn: str,
        *,
        queue_size: int = 1000,
        page: int = 500,
        idle_poll_s: float = 1.0,
        settle_poll_s: float = 0.05,
        max_hold_s: float = 10.0,
        slow_client_s: float = 30.0,
        query_timeout_s: float = 5.0,
    ) -> None:
        self.dsn = asyncpg_dsn(dsn)
        self.queue_size = queue_size
        self.page = page
        self.idle_poll_s = idle_poll_s
        self.settle_poll_s = settle_poll_s
        self.max_hold_s = max_hold_s
        self.slow_client_s = slow_client_s
        self.query_timeout_s = query_timeout_s
        self.subscribers: set[Subscriber] = set()
        self.counters = BroadcastStats()
        self.last_error = ""
        self._marks: list[_Mark] = []
        self._blocking: frozenset[int] = frozenset()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, tenant_id: int, after: int | None = None) -> Subscriber:
        """A subscriber of the tenant's events after id ``after`` (None: from now on)."""
        sub = Subscriber(tenant_id, after, self.queue_size, self._wakeup.set)
        self.subscribers.add(sub)
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def stats(self) -> dict[str, Any]:
        return {**asdict(self.counters), "subscribers": len(self.subscribers)}

    async def _run(self) -> None:
        backoff = Backoff(initial_s=0.5, maximum_s=10.0)
        try:
            while self.subscribers:
                conn: asyncpg.Connection | None = None
                try:
                    conn = await asyncpg.connect(self.dsn, timeout=self.query_timeout_s)
                    await conn.add_listener(CHANNEL, lambda *_: self._wakeup.set())
                    self.counters.connects += 1
                    backoff.reset()
                    await self._serve(conn)
                except _ERRORS as exc:
                    self.counters.connection_losses += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("conflict stream lost PostgreSQL (%s); reconnecting", exc)
                    await asyncio.sleep(backoff.delay())
                finally:
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(conn.close(), timeout=2)
        finally:
            self._marks.clear()  # a later start takes fresh marks

    async def _serve(self, conn: asyncpg.Connection) -> None:
        while self.subscribers:
            if conn.is_closed():
                raise ConnectionError("the LISTEN connection closed")
            self._wakeup.clear()
            pause = await self._step(conn)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=pause)

    async def _step(self, conn: asyncpg.Connection) -> float:
        """Hand every subscriber what it has room for, up to the frontier; returns how long
        to wait for a wake-up before the next step."""
        subs = list(self.subscribers)
        if not subs:
            return 0.0
        timeout = self.query_timeout_s
        # The last value first, then the snapshot: every id up to it was allocated by a
        # transaction that has committed, rolled back, or is in progress in the snapshot.
        row = await conn.fetchrow(LAST_VALUE, timeout=timeout)
        last = int(row["last_value"]) if row is not None and row["is_called"] else 0
        snapshot = await conn.fetchval("SELECT pg_current_snapshot()::text", timeout=timeout)
        now = time.monotonic()
        frontier = self._frontier(_Mark(last, parse_snapshot(snapshot), now))
        if frontier is None:
            return self.settle_poll_s
        frontier = min(frontier, last)
        by_tenant: dict[int, list[Subscriber]] = {}
        for sub in subs:
            if sub.position is None:
                sub.position = frontier
            elif sub.position > last:  # the outbox was reset (TRUNCATE ... RESTART IDENTITY)
                sub.position = 0
            by_tenant.setdefault(sub.tenant_id, []).append(sub)
        more = False
        for tenant_id, group in by_tenant.items():
            more |= await self._feed(conn, tenant_id, group, frontier, now)
        if more:
            return 0.0
        return self.settle_poll_s if last > frontier else self.idle_poll_s

    def _frontier(self, mark: _Mark) -> int | None:
        """The last value of the newest mark whose in-progress transactions have all ended
        (or that is older than ``max_hold_s``); older marks are dropped. None: none yet."""
        self._marks.append(mark)
        horizon = mark.taken_at - self.max_hold_s
        for i in range(len(self._marks) - 1, -1, -1):
            candidate = self._marks[i]
            blocking = candidate.in_progress & mark.in_progress
            if blocking and candidate.taken_at >= horizon:
                continue
            if blocking:
                self.counters.forced_frontiers += 1
                if blocking != self._blocking:
                    log.warning(
                        "conflict stream: transactions %s have been open for more than %.0f s; "
                        "events up to id %d are streamed without waiting for them",
                        sorted(blocking),
                        self.max_hold_s,
                        candidate.last_value,
                    )
            self._blocking = blocking
            del self._marks[:i]
            return candidate.last_value
        return None

    async def _feed(
        self,
        conn: asyncpg.Connection,
        tenant_id: int,
        group: list[Subscriber],
        frontier: int,
        now: float,
    ) -> bool:
        """Read one page of the tenant's events for the subscribers that have room; True
        if there may be more to read right away."""
        wanting = []
        for sub in group:
            assert sub.position is not None
            if sub.position >= frontier or sub.overflowed:
                sub.full_since = None
                continue
            if sub.queue.full():
                sub.behind = True
                if sub.full_since is None:
                    sub.full_since = now
                elif now - sub.full_since > self.slow_client_s:
                    sub.overflowed = True
                    self.counters.overflows += 1
                continue
            sub.full_since = None
            wanting.append(sub)
        if not wanting:
            return False
        cursor = min(s.position for s in wanting if s.position is not None)
        room = max(s.queue.maxsize - s.queue.qsize() for s in wanting)
        limit = min(self.page, room)
        rows = await store.events_after(conn, tenant_id, cursor, limit, up_to=frontier)
        self.counters.reads += 1
        complete = len(rows) < limit
        read_up_to = frontier if complete else rows[-1]["id"]
        for sub in wanting:
            assert sub.position is not None
            handed_all = True
            for event in rows:
                if event["id"] <= sub.position:
                    continue
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    handed_all = False
                    break
                sub.position = event["id"]
                self.counters.events += 1
            if handed_all:
                sub.position = max(sub.position, read_up_to)
            else:
                sub.behind = True
        return not complete

    async def close(self) -> None:
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
