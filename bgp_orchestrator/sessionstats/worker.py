"""The live session stats consumer: ``bgp.updates`` -> per-window flap features and metric points.

One consumer (its own group, :attr:`Settings.session_stats_group`) reads every
partition of the updates topic: a session's updates are spread over all of
them (the topic is keyed by prefix), so the group must have one member. For
each record it decodes the updates (undecodable records and invalid updates go
to the dead-letter topic with their position), orders them into windows
(:class:`~.stream.WindowStream`), and for every closed window:

1. hands the window's metric points to the point sink (``submit``; it may wait
   when the writer is full);
2. derives the window's flap features from the rolling history and writes them
   to the offline store (:class:`~bgp_orchestrator.flaps.live.LiveFeatureWriter`),
   from where the scheduled materialization moves them to Redis;
3. only then commits the offsets of the records whose updates are all in
   closed windows.

Delivery is at least once. A consumer stopped or killed replays from the last
commit: the window that was open is counted again from its start. A window
whose feature file exists already (written before a crash, not yet
committed) is skipped on replay, so its features are not written twice; its
points may have been submitted twice (the crash fell between 1 and 3), which a
store keyed by series and timestamp absorbs. The aggregator's state (routes
held, rolling history) starts empty after a restart: ``prefix_count`` and the
hour-long features warm up over the following hour.

It runs on the one consume loop (:mod:`bgp_orchestrator.stream.loop`): a
window that cannot be handed over (the feature store's disk, the metric
writer) stays queued and is retried with backoff, its records uncommitted.

Ray-free: ``deployments/session_stats.py`` runs it on Serve.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bgp_orchestrator.anomaly.points import window_points
from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.flaps.live import LiveFeatureWriter
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.sessionstats.stream import ClosedWindow, WindowStream
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stream.clients import update_stream_consumer
from bgp_orchestrator.stream.deadletters import DeadLetterSink
from bgp_orchestrator.stream.heap import LongLivedHeap
from bgp_orchestrator.stream.loop import ConsumeLoop, LogInfo, LoopOptions, Start
from bgp_orchestrator.stream.progress import ProgressStore

log = logging.getLogger(__name__)

_KINDS = frozenset(int(k) for k in Kind)


class PointSink(Protocol):
    """Where metric points go (the anomaly package's BackgroundMetricWriter)."""

    async def submit(self, points: Sequence[MetricPoint]) -> None: ...


class FeatureSink(Protocol):
    """Where window features go (:class:`LiveFeatureWriter`)."""

    def write_window(self, start: int, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def last_written(self) -> int | None: ...


@dataclass
class SessionStatsCounters:
    records: int = 0
    updates: int = 0
    late_updates: int = 0
    duplicate_session_events: int = 0
    skipped_updates: int = 0  # of windows handed over before a restart
    windows_closed: int = 0
    rows_written: int = 0
    points_submitted: int = 0
    commits: int = 0
    sessions: int = 0
    buffered: int = 0
    last_window_start: int | None = None
    dead_letters: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "updates": self.updates,
            "late_updates": self.late_updates,
            "duplicate_session_events": self.duplicate_session_events,
            "skipped_updates": self.skipped_updates,
            "windows_closed": self.windows_closed,
            "rows_written": self.rows_written,
            "points_submitted": self.points_submitted,
            "commits": self.commits,
            "sessions": self.sessions,
            "buffered": self.buffered,
            "last_window_start": self.last_window_start,
            "dead_letters": dict(self.dead_letters),
        }


_FAST_PATH_TYPES = frozenset({int})


def invalid_reason(update: Update) -> str | None:
    """Why a decoded update cannot be windowed, or None (the codec checks only the
    number of fields, so any type may arrive here)."""
    # The shape the publisher writes, checked with a few C calls: nearly every update.
    ts: object = update.timestamp
    if (
        type(ts) is float
        and 0 <= ts < math.inf
        and update.kind in _KINDS
        and type(update.peer_address) is str
        and type(update.collector) is str
        and type(update.peer_asn) is int
        and type(update.prefix) is str
        and type(update.as_path) is tuple
        and frozenset(map(type, update.as_path)) <= _FAST_PATH_TYPES
    ):
        return None
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        return f"timestamp {ts!r} is not a non-negative number of seconds"
    if update.kind not in _KINDS:
        return f"unknown update kind {update.kind!r}"
    address: object = update.peer_address
    collector: object = update.collector
    if not isinstance(address, str) or not isinstance(collector, str):
        return "peer address and collector must be strings"
    asn: object = update.peer_asn
    if isinstance(asn, bool) or not isinstance(asn, int):
        return f"peer ASN {asn!r} is not an integer"
    prefix: object = update.prefix
    if not isinstance(prefix, str):
        return f"prefix {prefix!r} is not a string"
    path: object = update.as_path
    if not isinstance(path, tuple) or not all(_path_element(e) for e in path):
        return f"AS path {path!r} is not a sequence of ASNs and AS sets"
    return None


def _path_element(element: object) -> bool:
    if isinstance(element, tuple):
        return all(isinstance(asn, int) for asn in element)
    return isinstance(element, int)


class SessionStatsWorker:
    """A :class:`~bgp_orchestrator.stream.loop.Processor` and a
    :class:`~bgp_orchestrator.service.Service`."""

    def __init__(
        self,
        settings: Settings,
        points: PointSink,
        bootstrap_servers: str,
        *,
        features: FeatureSink | None = None,
        name: str = "session-stats",
        grace_s: float = 15.0,
        max_records: int = 1000,
        poll_ms: int = 200,
        clock: Callable[[], float] = time.monotonic,
        progress: ProgressStore | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        describe: Callable[[], dict[str, Any]] | None = None,
        on_start: Callable[[], None] | None = None,
        usage: Callable[[Sequence[Mapping[str, Any]]], None] | None = None,
    ) -> None:
        """``features`` defaults to a :class:`LiveFeatureWriter` named after the consumer
        group (stable across restarts: its files mark the windows already done)."""
        self.settings = settings
        self.points = points
        self.features: FeatureSink = features or LiveFeatureWriter(
            settings, settings.session_stats_group
        )
        self.name = name
        self.grace_s = grace_s
        self.clock = clock
        self.window_s = settings.flap_window_s
        self.counters = SessionStatsCounters()
        self.stream = WindowStream(self.window_s, grace_s)
        self.ready = asyncio.Event()
        self.dead = DeadLetterSink(bootstrap_servers, settings.kafka_dlq_topic)
        self.loop = ConsumeLoop(
            self,
            lambda: update_stream_consumer(bootstrap_servers, settings.session_stats_group, name),
            settings.kafka_topic,
            options=LoopOptions(
                poll_ms=poll_ms, max_records=max_records, stall_after_s=settings.stall_after_s
            ),
            progress=progress,
        )
        self._closing: deque[ClosedWindow] = deque()
        self._closers = list(closers)
        self._describe = describe
        self._on_start = on_start
        #: counts each closed window's updates for the tenants' usage (no I/O)
        self._usage = usage
        self.heap = LongLivedHeap()

    # --- the service ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self._on_start is not None:
            self._on_start()  # e.g. the metric writer's task, on the running loop
        self.heap.start()
        done = await asyncio.to_thread(self.features.last_written)
        self.stream = WindowStream(self.window_s, self.grace_s, skip_until=done)
        if done is not None:
            log.info("%s: windows up to %d were handed over before; skipping them", self.name, done)
        await self.dead.start()
        self.ready.set()
        await self.loop.run(stop)

    def health(self) -> list[str]:
        return self.loop.health()

    def stats(self) -> dict[str, Any]:
        self._refresh_stats()
        out = {**self.counters.as_dict(), "loop": self.loop.stats()}
        if self._describe is not None:
            out.update(self._describe())
        return out

    async def aclose(self) -> None:
        await self.dead.close()
        for close in self._closers:
            await close()

    # --- the processor ------------------------------------------------------------------

    async def assign(
        self, partitions: Sequence[int], logs: Mapping[int, LogInfo]
    ) -> dict[int, Start]:
        log.info("%s: partitions %s", self.name, sorted(partitions))
        return {}  # from the committed offsets: windows are rebuilt by replay

    async def revoke(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.stream.forget(p)

    async def discard(self, partitions: Sequence[int]) -> None:
        await self.revoke(partitions)  # nothing is saved per partition here

    async def process(self, batch: Mapping[int, Sequence[Any]]) -> None:
        now = self.clock()
        topic = self.settings.kafka_topic
        for partition, records in batch.items():
            for record in records:
                position = f"{topic}/{partition}@{record.offset}"
                try:
                    decoded = codec.decode_batch(record.value)
                except Malformed as exc:
                    self.dead.add(DeadLetter.from_error(exc, "kafka", position, record.value))
                    decoded = []
                valid = []
                for update in decoded:
                    reason = invalid_reason(update)
                    if reason is None:
                        valid.append(update)
                    else:
                        self.dead.add(
                            DeadLetter("invalid-update", reason, "kafka", position, repr(update))
                        )
                self.counters.records += 1
                self.counters.updates += self.stream.offer(partition, record.offset, valid, now)

    async def store(self, commit_due: bool) -> None:
        await self.dead.flush()
        self._closing.extend(self.stream.advance(self._lagging(), self.clock()))
        while self._closing:
            await self._hand_over(self._closing[0])
            self._closing.popleft()
            self.heap.settled()  # the route tables and histories live on
        self.heap.maybe_collect()
        self._refresh_stats()

    async def drain(self) -> None:
        await self.store(commit_due=True)

    def committable(self) -> dict[int, int]:
        if self._closing:
            return {}  # a closed window still waits to be handed over
        return {p: o for p, o in self.stream.committable().items() if p in self.loop.partitions}

    def held(self) -> set[int]:
        """Partitions past what the open window needs (flow control)."""
        return {p for p in self.loop.partitions if self.stream.ahead(p)}

    def _lagging(self) -> list[int]:
        """Assigned partitions that have not delivered everything they hold."""
        return [
            p
            for p, progress in self.loop.partitions.items()
            if progress.highwater is None
            or progress.position is None
            or progress.position < progress.highwater
        ]

    async def _hand_over(self, window: ClosedWindow) -> None:
        points = window_points(window.rows, self.window_s)
        if points:
            await self.points.submit(points)
        try:
            written = await asyncio.to_thread(self.features.write_window, window.start, window.rows)
        except OSError as exc:
            raise ServiceUnavailable(
                "feature-store-unwritable",
                f"cannot write the features of window {window.start}: {exc}",
            ) from exc
        if self._usage is not None:
            self._usage(window.rows)
        self.counters.points_submitted += len(points)
        self.counters.rows_written += written
        self.counters.windows_closed += 1
        self.counters.last_window_start = window.start
        log.debug(
            "%s: window %d closed: %d sessions, %d points",
            self.name,
            window.start,
            written,
            len(points),
        )

    def _refresh_stats(self) -> None:
        c = self.counters
        c.late_updates = self.stream.aggregator.late
        c.duplicate_session_events = self.stream.duplicates
        c.skipped_updates = self.stream.skipped
        c.sessions = self.stream.aggregator.sessions
        c.buffered = self.stream.pending
        c.commits = self.loop.commits
        c.dead_letters = Counter(self.dead.sent)
