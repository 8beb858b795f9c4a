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

Ray-free: ``deployments/session_stats.py`` runs it on Serve.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bgp_orchestrator.anomaly.points import window_points
from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.live import LiveFeatureWriter
from bgp_orchestrator.ingest.consumers import update_stream_clients
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.sessionstats.stream import ClosedWindow, WindowStream
from bgp_orchestrator.settings import Settings

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


def invalid_reason(update: Update) -> str | None:
    """Why a decoded update cannot be windowed, or None (the codec checks only the
    number of fields, so any type may arrive here)."""
    ts: object = update.timestamp
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
    ) -> None:
        """``features`` defaults to a :class:`LiveFeatureWriter` named after the consumer
        group (stable across restarts: its files mark the windows already done)."""
        self.settings = settings
        self.points = points
        self.bootstrap = bootstrap_servers
        self.features: FeatureSink = features or LiveFeatureWriter(
            settings, settings.session_stats_group
        )
        self.name = name
        self.grace_s = grace_s
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.clock = clock
        self.window_s = settings.flap_window_s
        self.stats = SessionStatsCounters()
        self.stream = WindowStream(self.window_s, grace_s)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._paused: set[Any] = set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        from aiokafka.abc import ConsumerRebalanceListener

        worker = self

        class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                for tp in revoked:
                    worker.stream.forget(tp.partition)
                    worker._paused.discard(tp)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                log.info("%s: partitions %s", worker.name, sorted(tp.partition for tp in assigned))

        done = await asyncio.to_thread(self.features.last_written)
        self.stream = WindowStream(self.window_s, self.grace_s, skip_until=done)
        if done is not None:
            log.info("%s: windows up to %d were handed over before; skipping them", self.name, done)
        self._consumer, self._producer = update_stream_clients(
            self.bootstrap, self.settings.session_stats_group, self.name
        )
        await self._producer.start()
        try:
            await self._consumer.start()
            try:
                self._consumer.subscribe([self.settings.kafka_topic], listener=Rebalance())
                self.ready.set()
                while not self._stop.is_set():
                    batch = await self._consumer.getmany(
                        timeout_ms=self.poll_ms, max_records=self.max_records
                    )
                    await self._step(batch)
            finally:
                await self._consumer.stop()
        finally:
            await self._producer.stop()

    # --- one poll ----------------------------------------------------------------

    async def _step(self, batch: Mapping[Any, Sequence[Any]]) -> None:
        dead: list[DeadLetter] = []
        now = self.clock()
        for tp, records in batch.items():
            for record in records:
                position = f"{tp.topic}/{tp.partition}@{record.offset}"
                try:
                    decoded = codec.decode_batch(record.value)
                except Malformed as exc:
                    dead.append(DeadLetter.from_error(exc, "kafka", position, record.value))
                    decoded = []
                valid = []
                for update in decoded:
                    reason = invalid_reason(update)
                    if reason is None:
                        valid.append(update)
                    else:
                        dead.append(
                            DeadLetter("invalid-update", reason, "kafka", position, repr(update))
                        )
                self.stats.records += 1
                self.stats.updates += self.stream.offer(tp.partition, record.offset, valid, now)
        for letter in dead:
            self.stats.dead_letters[letter.code] += 1
            await self._producer.send_and_wait(self.settings.kafka_dlq_topic, letter.encode())
        closed = self.stream.advance(await self._lagging(), self.clock())
        for window in closed:
            await self._hand_over(window)
        if closed:
            await self._commit()
        self._flow_control()
        self._refresh_stats()

    async def _lagging(self) -> list[int]:
        """Assigned partitions that have not delivered everything they hold."""
        lagging = []
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None or await self._consumer.position(tp) < highwater:
                lagging.append(tp.partition)
        return lagging

    async def _hand_over(self, window: ClosedWindow) -> None:
        points = window_points(window.rows, self.window_s)
        if points:
            await self.points.submit(points)
        written = await asyncio.to_thread(self.features.write_window, window.start, window.rows)
        self.stats.points_submitted += len(points)
        self.stats.rows_written += written
        self.stats.windows_closed += 1
        self.stats.last_window_start = window.start
        log.debug(
            "%s: window %d closed: %d sessions, %d points",
            self.name,
            window.start,
            written,
            len(points),
        )

    async def _commit(self) -> None:
        from aiokafka.errors import CommitFailedError

        offsets = self.stream.committable()
        mine = {
            tp: offsets[tp.partition]
            for tp in self._consumer.assignment()
            if tp.partition in offsets
        }
        if not mine:
            return
        try:
            await self._consumer.commit(mine)
            self.stats.commits += 1
        except CommitFailedError as exc:  # a rebalance: the next owner replays (idempotent)
            log.warning("%s: commit failed (%s); the records will be replayed", self.name, exc)

    def _flow_control(self) -> None:
        """Pause partitions that are past what the open window needs; resume the rest."""
        for tp in self._consumer.assignment():
            ahead = self.stream.ahead(tp.partition)
            if ahead and tp not in self._paused:
                self._consumer.pause(tp)
                self._paused.add(tp)
            elif not ahead and tp in self._paused:
                self._consumer.resume(tp)
                self._paused.discard(tp)

    def _refresh_stats(self) -> None:
        self.stats.late_updates = self.stream.aggregator.late
        self.stats.duplicate_session_events = self.stream.duplicates
        self.stats.skipped_updates = self.stream.skipped
        self.stats.sessions = self.stream.aggregator.sessions
        self.stats.buffered = self.stream.pending
