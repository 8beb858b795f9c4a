"""Write metric points in the background, in batches, retrying until they are stored.

:class:`BackgroundMetricWriter` decouples the producers of points (live
statistics, the fitting job) from the store: :meth:`~BackgroundMetricWriter.submit`
queues points and returns, a task writes them in batches. Nothing is dropped:
when the queue is full ``submit`` waits (back-pressure), a failed write is
retried with capped exponential backoff, keeping its batch, and
:meth:`~BackgroundMetricWriter.close` says how many points it could not store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.anomaly.store import MetricStore, MetricStoreError, validate_points

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterStats:
    #: Points the store has accepted.
    written: int
    #: Failed write attempts (each retried).
    retries: int
    #: Points queued or being written.
    pending: int
    #: Batches written.
    batches: int
    #: The last write failure, "" when none.
    last_error: str


class BackgroundMetricWriter:
    """Batches points for a :class:`~bgp_orchestrator.anomaly.store.MetricStore`.

    ``batch_size`` points are written together, or fewer once the oldest queued
    point has waited ``linger_s``. At most ``max_pending`` points wait in the
    queue. Retries wait ``initial_backoff_s``, doubling up to ``max_backoff_s``.
    The writer does not close the store.
    """

    def __init__(
        self,
        store: MetricStore,
        *,
        batch_size: int = 5_000,
        linger_s: float = 1.0,
        max_pending: int = 100_000,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be at least 1")
        if linger_s < 0 or initial_backoff_s <= 0 or max_backoff_s < initial_backoff_s:
            raise ValueError(
                "need linger_s >= 0 and 0 < initial_backoff_s <= max_backoff_s, got "
                f"{linger_s}, {initial_backoff_s}, {max_backoff_s}"
            )
        self.store = store
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_pending = max_pending
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._queue: deque[MetricPoint] = deque()
        self._in_flight = 0
        self._written = 0
        self._retries = 0
        self._batches = 0
        self._last_error = ""
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # Created in start(), inside the event loop that runs the writer.
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None

    # --- counters ----------------------------------------------------------------

    @property
    def written(self) -> int:
        return self._written

    @property
    def retries(self) -> int:
        return self._retries

    @property
    def pending(self) -> int:
        return len(self._queue) + self._in_flight

    def stats(self) -> WriterStats:
        return WriterStats(
            self._written, self._retries, self.pending, self._batches, self._last_error
        )

    # --- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (call from the event loop that will submit)."""
        if self._task is not None:
            return
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"metric-writer[{self.store.describe()}]"
        )
        self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        # Wake blocked submitters so they see the writer is gone.
        assert self._room is not None
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("the metric writer stopped: %r", task.exception())

    def _check_open(self) -> None:
        if self._task is None:
            raise MetricStoreError("metric-writer-not-started", "call start() before submit()")
        if self._closing:
            raise MetricStoreError(
                "metric-writer-closed", "the metric writer is closed; it takes no more points"
            )
        if self._task.done():
            raise MetricStoreError(
                "metric-writer-failed",
                f"the metric writer stopped ({self._failure()}); {self.pending} points not stored",
            )

    def _failure(self) -> str:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            if exc is not None:
                return f"{type(exc).__name__}: {exc}"
        return "cancelled"

    async def submit(self, points: Sequence[MetricPoint]) -> None:
        """Queue the points; waits while the queue is full.

        Raises :class:`MetricStoreError`: ``invalid-metric-point`` (nothing of this
        call is queued), or when the writer is closed or has stopped.
        """
        validate_points(points)
        self._check_open()
        assert self._wake is not None and self._room is not None
        index = 0
        while index < len(points):
            room = self.max_pending - len(self._queue)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                self._check_open()
                continue
            self._queue.extend(points[index : index + room])
            index += room
            self._wake.set()

    async def close(self, timeout: float | None = 30.0) -> None:  # noqa: ASYNC109
        """Write what is queued, then stop; raises :class:`MetricStoreError` when
        points remain unstored after ``timeout`` seconds (``None``: wait for ever)."""
        if self._task is None:
            self._closing = True
            return
        assert self._wake is not None
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            raise MetricStoreError(
                "metric-writer-close-timeout",
                f"{self.pending} metric points could not be stored in {timeout} s "
                f"({self.store.describe()}: {self._last_error or 'still writing'})",
                details={"pending": self.pending},
            ) from None
        except MetricStoreError:
            raise
        except Exception as exc:
            raise MetricStoreError(
                "metric-writer-failed",
                f"the metric writer stopped ({type(exc).__name__}: {exc}); "
                f"{self.pending} points not stored",
                details={"pending": self.pending},
            ) from exc

    # --- the task ----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None and self._room is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = loop.time() + self.linger_s
            while len(self._queue) < self.batch_size and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            size = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
            self._in_flight = size
            self._room.set()
            await self._deliver(batch)
            self._in_flight = 0

    async def _deliver(self, batch: list[MetricPoint]) -> None:
        delay = self.initial_backoff_s
        while True:
            try:
                await self.store.write(batch)
            except MetricStoreError as exc:
                self._retries += 1
                self._last_error = exc.message
                log.warning(
                    "writing %d metric points to %s failed (%s); retry %d in %.1f s, "
                    "%d points pending",
                    len(batch),
                    self.store.describe(),
                    exc.message,
                    self._retries,
                    delay,
                    self.pending,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self._written += len(batch)
            self._batches += 1
            return
