"""Live session stats on any number of replicas: ``bgp.updates`` -> window features and points.

Two stages, each a :class:`~bgp_orchestrator.stream.loop.Processor` on the one
consume loop, run in every replica (:class:`SessionStatsWorker`):

1. **Partials** (group :attr:`Settings.session_stats_group`, on ``bgp.updates``):
   each partition's updates are windowed on that partition's own event time
   (:class:`~.stream.WindowStream`, one per partition; while a partition is caught
   up, its event time runs on with the replica's clock, so every turn of the loop
   closes the windows of a stream that stopped, grace seconds after their end).
   A session's prefixes are spread over the partitions but each prefix lives on
   one, so a partition's counts of a window are a *partial* of the session's
   (:mod:`.partials`). For
   every closed window it sends one record to every partition of the
   session-windows topic, with the partial rows of the sessions mapped there,
   and waits for the broker's acknowledgement before the window's records may
   be committed.
2. **Merge** (group :attr:`Settings.session_merge_group`, on the session-windows
   topic): once every source partition has reported a window, or on the
   timeout (:attr:`Settings.session_merge_timeout_s`) when one never does
   (:class:`~.merge.SessionMerger`), its partials are summed into the session's
   rows, which give the metric points (``submit`` to the point sink) and the
   flap features (:class:`~bgp_orchestrator.flaps.live.LiveFeatureWriter`, one
   writer per session-windows partition, its files compacted per hour and day).

Kafka spreads both topics' partitions over the replicas, so several replicas
give the features one would, and a partition moving between them carries its
state: every stage checkpoints each partition's state (route tables, the open
window, buffered updates; the merger's waiting partials and the hour of rows
the 1-hour features look back on) with the offset it reflects, every
:attr:`Settings.session_stats_checkpoint_s` and when the partition is revoked,
in Redis, *fenced* as the detector's are
(:class:`~bgp_orchestrator.detection.checkpoint.RedisCheckpoints`: a stale
owner cannot overwrite the new one's). A new owner claims and loads the
checkpoint before the loop resumes the partition, and replays from its offset:
the 1-hour features go on, no reset to zero. A checkpoint is only taken when
every window its state has closed was handed over, so a replay never skips
one; windows it hands over again are dropped by the merger (already merged) or
rewrite the same feature file (identical rows), and their points are absorbed
by the metric store (keyed by series and time). Without a checkpoint (first
start, Redis lost) a partition starts at its committed offset with empty state:
``prefix_count`` and the 1-hour features warm up over an hour.

Ray-free: ``deployments/session_stats.py`` runs it on Serve.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from bgp_orchestrator.anomaly.points import window_points
from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection.checkpoint import CheckpointStore, MemoryCheckpoints, StaleOwner
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.flaps.compaction import HOUR
from bgp_orchestrator.flaps.features import ENTITY
from bgp_orchestrator.flaps.live import LiveFeatureWriter
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.ingest.publisher import ensure_topics
from bgp_orchestrator.service import Backoff, sleep_or_stop
from bgp_orchestrator.sessionstats import partials as wire
from bgp_orchestrator.sessionstats.merge import MergedWindow, SessionMerger
from bgp_orchestrator.sessionstats.snapshot import dump_merge, dump_stream, load_merge, load_stream
from bgp_orchestrator.sessionstats.stream import ClosedWindow, WindowStream
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stream.clients import acknowledged_producer, update_stream_consumer
from bgp_orchestrator.stream.deadletters import DeadLetterSink
from bgp_orchestrator.stream.heap import LongLivedHeap
from bgp_orchestrator.stream.loop import ConsumeLoop, LogInfo, LoopOptions, Start
from bgp_orchestrator.stream.pacing import CpuPacer
from bgp_orchestrator.stream.progress import ProgressStore

log = logging.getLogger(__name__)

_KINDS = frozenset(int(k) for k in Kind)
#: Updates windowed between two turns of the event loop.
SLICE_UPDATES = 5_000


class PointSink(Protocol):
    """Where metric points go (the anomaly package's BackgroundMetricWriter)."""

    async def submit(self, points: Sequence[MetricPoint]) -> None: ...


CheckpointFactory = Callable[[str, str], CheckpointStore]
"""(consumer group, topic) -> the checkpoint store of that group's partitions."""


@dataclass
class SessionStatsCounters:
    records: int = 0
    updates: int = 0
    late_updates: int = 0
    partial_windows: int = 0  # (updates partition, window) pairs sent to the merge stage
    heartbeats: int = 0
    duplicate_partials: int = 0  # partials of windows already merged (a replay)
    windows_closed: int = 0  # (session-windows partition, window) pairs handed over
    windows_timed_out: int = 0  # of those, merged on the timeout without every source
    rows_written: int = 0
    points_submitted: int = 0
    commits: int = 0
    sessions: int = 0
    buffered: int = 0
    last_window_start: int | None = None
    checkpoints_saved: int = 0
    checkpoint_failures: int = 0
    restored_partitions: int = 0  # partitions resumed from a checkpoint
    log_resets: int = 0
    files_compacted: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dead_letters"] = dict(self.dead_letters)
        return out


_FAST_PATH_TYPES = frozenset({int})


#: How far ahead of this machine's clock an update's timestamp may be. Further is a
#: broken clock or garbage, and one such update would move its partition's event
#: time there: every 5-minute window up to it closed one by one (a wedge, for a
#: timestamp of year 3000), and the partition held "ahead" of the others meanwhile.
FUTURE_S = 86_400.0


def invalid_reason(update: Update, latest: float = math.inf) -> str | None:
    """Why a decoded update cannot be windowed, or None (the codec checks only the
    number of fields, so any type may arrive here). ``latest``: the largest timestamp
    accepted (the clock plus :data:`FUTURE_S`)."""
    # The shape the publisher writes, checked with a few C calls: nearly every update.
    ts: object = update.timestamp
    if (
        type(ts) is float
        and 0 <= ts <= latest
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
    if ts > latest:
        return f"timestamp {ts!r} is more than {FUTURE_S:.0f} s ahead of this machine's clock"
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


def _lagging(loop: ConsumeLoop, log_starts: Mapping[int, int]) -> set[int]:
    """Assigned partitions that have not delivered everything they hold. A partition not
    read from yet is at the beginning of its log (``log_starts``): one whose log is empty
    is caught up, not lagging forever (it must send heartbeats, or no window is merged)."""
    out = set()
    for p, progress in loop.partitions.items():
        position = progress.position if progress.position is not None else log_starts.get(p)
        if progress.highwater is None or position is None or position < progress.highwater:
            out.add(p)
    return out


class _Checkpointing(ABC):
    """What both stages share: the worker, fenced checkpoints of their partitions' state."""

    name: str
    loop: ConsumeLoop

    def __init__(self, worker: SessionStatsWorker, checkpoints: CheckpointStore) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.counters = worker.counters
        self.checkpoints = checkpoints
        self.token = worker.token
        self.window_s = worker.window_s
        self.positions: dict[int, int] = {}  # next offset to process, per partition
        self._checkpointed: dict[int, int] = {}
        self._last_checkpoint = worker.clock()

    @abstractmethod
    def _unsettled(self) -> set[int]:
        """Partitions with a closed window not yet handed over (no checkpoint now)."""

    @abstractmethod
    def _dump(self, partition: int) -> bytes:
        """The partition's state as a checkpoint."""

    async def _save(self, partition: int) -> bool:
        position = self.positions.get(partition)
        if position is None or partition in self._unsettled():
            return False
        if self._checkpointed.get(partition) == position:
            return True
        blob = await asyncio.to_thread(self._dump, partition)
        try:
            await self.checkpoints.save(partition, position, blob, self.token)
        except (ServiceUnavailable, StaleOwner) as exc:
            # A checkpoint only shortens a replay: the stream goes on without it.
            self.counters.checkpoint_failures += 1
            log.warning("%s: checkpoint of partition %d not saved: %s", self.name, partition, exc)
            return False
        self.counters.checkpoints_saved += 1
        self._checkpointed[partition] = position
        # Records of the open window stay uncommitted until it closes (a window or
        # more); the checkpoint holds them, so the partition is progressing, not stalled.
        self.loop.stored(partition, position)
        return True

    async def _save_due(self) -> None:
        now = self.worker.clock()
        if now - self._last_checkpoint < self.settings.session_stats_checkpoint_s:
            return
        self._last_checkpoint = now
        for p in sorted(self.positions):
            await self._save(p)

    async def _restore(self, partition: int, info: LogInfo) -> tuple[Start, bytes | None]:
        """Claim the partition and load its checkpoint: (where it starts, the state)."""
        await self.checkpoints.claim(partition, self.token)
        checkpoint = await self.checkpoints.load(partition)
        if checkpoint is None:
            return None, None
        offset, blob = checkpoint
        if offset > info.end:
            log.warning(
                "%s: checkpoint of partition %d is at offset %d beyond the end of the log "
                "(%d): the log was reset; starting over from the new log",
                self.name,
                partition,
                offset,
                info.end,
            )
            self.counters.log_resets += 1
            return "reset", None
        self.positions[partition] = offset
        self._checkpointed[partition] = offset
        self.counters.restored_partitions += 1
        log.info(
            "%s: partition %d resumes from its checkpoint at offset %d",
            self.name,
            partition,
            offset,
        )
        return offset, blob


class PartialStage(_Checkpointing):
    """Stage 1: partitions of ``bgp.updates`` -> partial windows on the session-windows topic."""

    def __init__(self, worker: SessionStatsWorker, checkpoints: CheckpointStore) -> None:
        super().__init__(worker, checkpoints)
        self.name = f"{worker.name}/partials"
        self.streams: dict[int, WindowStream] = {}
        self._closing: deque[tuple[int, ClosedWindow]] = deque()
        self._heartbeat_until: dict[int, int] = {}
        self._heartbeat_at = 0.0
        self._log_starts: dict[int, int] = {}  # where each partition's log began when assigned
        self._targets: dict[str, int] = {}  # session -> its session-windows partition
        self._targets_of = 0  # ... of that many partitions
        self.loop = ConsumeLoop(
            self,
            lambda: update_stream_consumer(
                worker.bootstrap, self.settings.session_stats_group, self.name
            ),
            self.settings.kafka_topic,
            options=worker.loop_options,
            progress=worker.progress,
            pacer=worker.pacer,
        )

    def _new_stream(self) -> WindowStream:
        return WindowStream(self.window_s, self.worker.grace_s, partial=True)

    def _unsettled(self) -> set[int]:
        return {p for p, _ in self._closing}

    def _dump(self, partition: int) -> bytes:
        return dump_stream(self.streams[partition], self.worker.clock())

    async def assign(
        self, partitions: Sequence[int], logs: Mapping[int, LogInfo]
    ) -> dict[int, Start]:
        starts: dict[int, Start] = {}
        restored: dict[int, WindowStream] = {}
        for p in partitions:
            start, blob = await self._restore(p, logs[p])
            stream = self._new_stream()
            if blob is not None:
                try:
                    stream = await asyncio.to_thread(load_stream, blob, self.worker.clock())
                except (ValueError, TypeError, Malformed) as exc:
                    log.error("%s: unusable checkpoint of partition %d (%s)", self.name, p, exc)
                    start = None
                    self.positions.pop(p, None)
            restored[p] = stream
            starts[p] = start
            self._log_starts[p] = logs[p].start
        self.streams.update(restored)
        return starts

    async def revoke(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            if p in self.streams:
                await self._save(p)  # the next owner goes on from here
            await self.discard([p])

    async def discard(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.streams.pop(p, None)
            self.positions.pop(p, None)
            self._checkpointed.pop(p, None)
            self._heartbeat_until.pop(p, None)
            self._log_starts.pop(p, None)
        self._closing = deque((p, w) for p, w in self._closing if p not in partitions)

    async def process(self, batch: Mapping[int, Sequence[Any]]) -> None:
        now = self.worker.clock()
        topic = self.settings.kafka_topic
        dead = self.worker.dead
        since_yield = 0
        for partition, records in batch.items():
            stream = self.streams[partition]
            for record in records:
                position = f"{topic}/{partition}@{record.offset}"
                try:
                    decoded = codec.decode_batch(record.value)
                except Malformed as exc:
                    dead.add(DeadLetter.from_error(exc, "kafka", position, record.value))
                    decoded = []
                valid = []
                latest = time.time() + FUTURE_S
                for update in decoded:
                    reason = invalid_reason(update, latest)
                    if reason is None:
                        valid.append(update)
                    else:
                        dead.add(
                            DeadLetter("invalid-update", reason, "kafka", position, repr(update))
                        )
                self.counters.records += 1
                self.counters.updates += stream.offer(partition, record.offset, valid, now)
                since_yield += len(decoded)
                if since_yield >= SLICE_UPDATES:
                    # Let the consumers' heartbeats and health checks run: a fetch of
                    # 1,000 records can hold a few hundred thousand updates. And keep
                    # to the CPU share within such a fetch, not only between them.
                    since_yield = 0
                    if self.worker.pacer is None or not await self.worker.pacer.pace():
                        await asyncio.sleep(0)
            self.positions[partition] = records[-1].offset + 1

    async def store(self, commit_due: bool) -> None:
        await self.worker.dead.flush()
        now = self.worker.clock()
        lagging = _lagging(self.loop, self._log_starts)
        # A caught-up partition's event time follows the newest of this replica's (the
        # others' updates tell how far the stream is: its own may simply be quiet).
        marks = [m for s in self.streams.values() if (m := s.watermark([], now)) is not None]
        mark = max(marks, default=None)
        for p, stream in self.streams.items():
            for window in stream.advance([p] if p in lagging else [], now, at_least=mark):
                self._closing.append((p, window))
        while self._closing:
            p, window = self._closing[0]
            await self._send(p, window)
            self._closing.popleft()
            self.counters.partial_windows += 1
            self.worker.heap.settled()  # the route tables live on
        if mark is None:
            # No partition of this replica has carried an update: the event time the
            # merge stage has seen the other sources report is how far the stream is.
            reported = self.worker.merge.reported_until()
            mark = None if reported is None else reported + self.worker.grace_s
        await self._heartbeats(lagging, mark, now)
        if commit_due:
            await self._save_due()
        self.worker.heap.maybe_collect()

    async def drain(self) -> None:
        await self.store(commit_due=False)

    def committable(self) -> dict[int, int]:
        closing = self._unsettled()
        out: dict[int, int] = {}
        for p, stream in self.streams.items():
            if p in closing or p not in self.loop.partitions:
                continue
            out.update(stream.committable())
        return out

    def held(self) -> set[int]:
        return {p for p, s in self.streams.items() if s.ahead(p)}

    async def _send(self, partition: int, window: ClosedWindow) -> None:
        worker = self.worker
        if self._targets_of != worker.targets:  # the topic's partitions, known after start
            self._targets.clear()
            self._targets_of = worker.targets
        per_target = wire.split_rows(window.rows, worker.targets, self._targets)
        records = [
            wire.encode_window(partition, worker.sources, window.start, self.window_s, rows)
            for rows in per_target
        ]
        await self._publish(records, f"window {window.start} of partition {partition}")

    async def _publish(self, records: list[bytes], what: str) -> None:
        topic = self.settings.session_windows_topic
        try:
            futures = [
                await self.worker.producer.send(topic, value, partition=target)
                for target, value in enumerate(records)
            ]
            await asyncio.gather(*futures)
        except Exception as exc:
            raise ServiceUnavailable(
                "session-windows-unavailable",
                f"cannot send the partials of {what} to {topic} ({type(exc).__name__}: {exc})",
            ) from exc

    async def _heartbeats(self, lagging: set[int], mark: float | None, now: float) -> None:
        """Partitions that have never carried an update (caught up, no window open) tell
        the merge stage they have nothing before the event time the others reached, so
        they hold no window back."""
        if mark is None or now - self._heartbeat_at < 1.0:
            return
        until = int((mark - self.worker.grace_s) // self.window_s) * self.window_s
        self._heartbeat_at = now
        for p, stream in self.streams.items():
            if p in lagging or stream.open is not None or stream.pending:
                continue
            if self._heartbeat_until.get(p, -1) >= until:
                continue
            beat = wire.encode_heartbeat(p, self.worker.sources, until)
            await self._publish([beat] * self.worker.targets, f"a heartbeat of partition {p}")
            self._heartbeat_until[p] = until
            self.counters.heartbeats += 1


class MergeStage(_Checkpointing):
    """Stage 2: partitions of the session-windows topic -> features and metric points."""

    def __init__(self, worker: SessionStatsWorker, checkpoints: CheckpointStore) -> None:
        super().__init__(worker, checkpoints)
        self.name = f"{worker.name}/merge"
        self.mergers: dict[int, SessionMerger] = {}
        self.writers: dict[int, LiveFeatureWriter] = {}
        self._closing: deque[tuple[int, MergedWindow]] = deque()
        self._compacted_hour: dict[int, int] = {}
        self.loop = ConsumeLoop(
            self,
            lambda: update_stream_consumer(
                worker.bootstrap, self.settings.session_merge_group, self.name
            ),
            self.settings.session_windows_topic,
            options=worker.loop_options,
            progress=worker.merge_progress,
            pacer=worker.pacer,
        )

    def writer_tag(self, partition: int) -> str:
        return f"{self.settings.session_merge_group}-p{partition}"

    def _unsettled(self) -> set[int]:
        return {p for p, _ in self._closing}

    def _dump(self, partition: int) -> bytes:
        return dump_merge(self.mergers[partition], self.writers[partition].features)

    async def assign(
        self, partitions: Sequence[int], logs: Mapping[int, LogInfo]
    ) -> dict[int, Start]:
        starts: dict[int, Start] = {}
        for p in partitions:
            start, blob = await self._restore(p, logs[p])
            writer = LiveFeatureWriter(self.settings, self.writer_tag(p))
            merger: SessionMerger | None = None
            if blob is not None:
                try:
                    loaded, writer.features = await asyncio.to_thread(load_merge, blob)
                    loaded.next_offset = self.positions[p]
                    merger = loaded
                except (ValueError, TypeError, KeyError) as exc:
                    log.error("%s: unusable checkpoint of partition %d (%s)", self.name, p, exc)
                    start, merger = None, None
                    self.positions.pop(p, None)
            if merger is None:
                # No state: the windows this writer stored already are not written again.
                done = await asyncio.to_thread(writer.last_written)
                merger = SessionMerger(self.window_s, merged_until=done)
            self.mergers[p] = merger
            self.writers[p] = writer
            starts[p] = start
        return starts

    async def revoke(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            if p in self.mergers:
                await self._save(p)
            await self.discard([p])

    async def discard(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            merger = self.mergers.pop(p, None)
            if merger is not None:
                self.worker.retired_duplicates += merger.duplicates
            self.writers.pop(p, None)
            self.positions.pop(p, None)
            self._checkpointed.pop(p, None)
        self._closing = deque((p, w) for p, w in self._closing if p not in partitions)

    async def process(self, batch: Mapping[int, Sequence[Any]]) -> None:
        topic = self.settings.session_windows_topic
        now = self.worker.clock()
        for partition, records in batch.items():
            merger = self.mergers[partition]
            for record in records:
                try:
                    partial = wire.decode(record.value)
                except wire.BadPartial as exc:
                    position = f"{topic}/{partition}@{record.offset}"
                    self.worker.dead.add(
                        DeadLetter(
                            exc.code, exc.message, "kafka", position, repr(record.value)[:500]
                        )
                    )
                    continue
                merger.offer(record.offset, partial, now)
            self.positions[partition] = records[-1].offset + 1

    async def store(self, commit_due: bool) -> None:
        await self.worker.dead.flush()
        now, timeout_s = self.worker.clock(), self.settings.session_merge_timeout_s
        for p, merger in self.mergers.items():
            for window in merger.ready(now, timeout_s):
                if not window.complete:
                    self.counters.windows_timed_out += 1
                    log.warning(
                        "%s: window %d of partition %d merged after %.0fs without every "
                        "source's partial (sources reported: %s)",
                        self.name,
                        window.start,
                        p,
                        timeout_s,
                        merger.reported,
                    )
                self._closing.append((p, window))
        while self._closing:
            p, window = self._closing[0]
            await self._hand_over(p, window)
            self._closing.popleft()
            await self._maybe_compact(p, window.start)
        if commit_due:
            await self._save_due()

    async def drain(self) -> None:
        await self.store(commit_due=False)

    def committable(self) -> dict[int, int]:
        closing = self._unsettled()
        out = {}
        for p, merger in self.mergers.items():
            offset = merger.committable()
            if offset is not None and p not in closing and p in self.loop.partitions:
                out[p] = offset
        return out

    def held(self) -> set[int]:
        return set()

    def reported_until(self) -> int | None:
        """The furthest event time any source reported to this replica's partitions."""
        return max(
            (u for m in self.mergers.values() if (u := m.reported_until()) is not None),
            default=None,
        )

    async def _hand_over(self, partition: int, window: MergedWindow) -> None:
        points = window_points(window.rows, self.window_s)
        if points:
            await self.worker.points.submit(points)
        writer = self.writers[partition]
        try:
            written = await asyncio.to_thread(writer.write_window, window.start, window.rows)
        except OSError as exc:
            raise ServiceUnavailable(
                "feature-store-unwritable",
                f"cannot write the features of window {window.start}: {exc}",
            ) from exc
        if self.worker._usage is not None:
            self.worker._usage(window.rows)
        c = self.counters
        c.points_submitted += len(points)
        c.rows_written += written
        c.windows_closed += 1
        c.last_window_start = max(c.last_window_start or window.start, window.start)
        log.debug(
            "%s: window %d of partition %d: %d sessions, %d points",
            self.name,
            window.start,
            partition,
            written,
            len(points),
        )

    async def _maybe_compact(self, partition: int, start: int) -> None:
        """Once per hour of event time, merge the partition's older window files."""
        hour = start // HOUR
        if self._compacted_hour.get(partition) == hour:
            return
        self._compacted_hour[partition] = hour
        writer = self.writers[partition]
        try:
            done = await asyncio.to_thread(
                writer.compact, start, self.settings.feature_compact_after_s
            )
        except (OSError, ValueError) as exc:  # the small files stay: readers lose nothing
            log.warning("%s: compaction of %s failed: %s", self.name, writer.writer, exc)
            return
        self.counters.files_compacted += done.files_merged


class SessionStatsWorker:
    """Both stages of the session stats in one :class:`~bgp_orchestrator.service.Service`."""

    def __init__(
        self,
        settings: Settings,
        points: PointSink,
        bootstrap_servers: str,
        *,
        name: str = "session-stats",
        grace_s: float | None = None,
        max_records: int = 1000,
        poll_ms: int = 200,
        clock: Callable[[], float] = time.monotonic,
        checkpoints: CheckpointFactory | None = None,
        progress: ProgressStore | None = None,
        merge_progress: ProgressStore | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        describe: Callable[[], dict[str, Any]] | None = None,
        on_start: Callable[[], None] | None = None,
        usage: Callable[[Sequence[Mapping[str, Any]]], None] | None = None,
    ) -> None:
        """``checkpoints`` gives the store of a (group, topic); without it, checkpoints
        live in this process only (tests): a restart then starts from the commits."""
        self.settings = settings
        self.points = points
        self.bootstrap = bootstrap_servers
        self.name = name
        self.token = f"{name}-{uuid.uuid4().hex[:8]}"
        self.grace_s = settings.session_stats_grace_s if grace_s is None else grace_s
        self.clock = clock
        self.window_s = settings.flap_window_s
        self.counters = SessionStatsCounters()
        self.ready = asyncio.Event()
        self.dead = DeadLetterSink(bootstrap_servers, settings.kafka_dlq_topic)
        self.producer: Any = None
        self.sources = settings.kafka_partitions  # partitions of the updates topic
        self.targets = settings.kafka_partitions  # partitions of the session-windows topic
        self.progress = progress
        self.merge_progress = merge_progress
        self.loop_options = LoopOptions(
            poll_ms=poll_ms, max_records=max_records, stall_after_s=settings.stall_after_s
        )
        self.heap = LongLivedHeap()
        #: one for the process: both stages' loops keep to the share together
        self.pacer = (
            CpuPacer(
                settings.session_stats_cpu_share,
                pressure_pct=settings.session_stats_pressure_pct,
            )
            if settings.session_stats_cpu_share > 0
            else None
        )
        self.retired_duplicates = 0
        factory = checkpoints or _memory_checkpoints()
        self.partials = PartialStage(
            self, factory(settings.session_stats_group, settings.kafka_topic)
        )
        self.merge = MergeStage(
            self, factory(settings.session_merge_group, settings.session_windows_topic)
        )
        #: the partial stage's loop (the one on ``bgp.updates``)
        self.loop = self.partials.loop
        self._closers = list(closers)
        self._describe = describe
        self._on_start = on_start
        #: counts each merged window's updates for the tenants' usage (no I/O)
        self._usage = usage
        self._not_ready = "starting"

    # --- the service ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self._on_start is not None:
            self._on_start()  # e.g. the metric writer's task, on the running loop
        self.heap.start()
        if not await self._until_ready(stop):
            return
        self.ready.set()
        inner = asyncio.Event()
        tasks = [
            asyncio.create_task(self.partials.loop.run(inner)),
            asyncio.create_task(self.merge.loop.run(inner)),
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            inner.set()  # one stage failed or we stop: both finish
            stopping.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _until_ready(self, stop: asyncio.Event) -> bool:
        """Topics, the dead-letter and partial producers, retried while Kafka is away."""
        backoff = Backoff(initial_s=0.5, maximum_s=15.0)
        while True:
            try:
                await self._start_clients()
                self._not_ready = ""
                return True
            except ServiceUnavailable as exc:
                self._not_ready = exc.message
                log.warning("%s: not ready: %s; retrying", self.name, exc.message)
                if await sleep_or_stop(stop, backoff.delay()):
                    return False

    async def _start_clients(self) -> None:
        s = self.settings
        self.sources = await ensure_topics(
            self.bootstrap, s.kafka_topic, s.kafka_dlq_topic, s.kafka_partitions
        )
        self.targets = await ensure_topics(
            self.bootstrap, s.session_windows_topic, s.kafka_dlq_topic, self.sources
        )
        if self.producer is None:
            producer = acknowledged_producer(self.bootstrap)
            try:
                await producer.start()
            except Exception as exc:
                await producer.stop()
                raise ServiceUnavailable(
                    "kafka-unavailable", f"cannot connect to Kafka at {self.bootstrap}: {exc}"
                ) from exc
            self.producer = producer
        if self.dead._producer is None:
            await self.dead.start()

    def health(self) -> list[str]:
        return self.partials.loop.health() + self.merge.loop.health()

    def merged_until(self) -> int | None:
        """Start of the newest window every session-windows partition this worker owns
        has handed over (None: some has none yet, or it owns none)."""
        done = [m.merged_until for m in self.merge.mergers.values()]
        if not done or any(d is None for d in done):
            return None
        return min(d for d in done if d is not None)

    def stats(self) -> dict[str, Any]:
        self._refresh_stats()
        out = {
            **self.counters.as_dict(),
            "loop": self.partials.loop.stats(),
            "merge_loop": self.merge.loop.stats(),
            "paced_s": round(self.pacer.paused_s, 1) if self.pacer is not None else 0.0,
        }
        if self._describe is not None:
            out.update(self._describe())
        return out

    async def aclose(self) -> None:
        await self.dead.close()
        if self.producer is not None:
            await self.producer.stop()
        for close in self._closers:
            await close()

    def _refresh_stats(self) -> None:
        c = self.counters
        streams = self.partials.streams.values()
        c.late_updates = sum(s.aggregator.late for s in streams)
        c.buffered = sum(s.pending for s in streams)
        c.duplicate_partials = self.retired_duplicates + sum(
            m.duplicates for m in self.merge.mergers.values()
        )
        c.sessions = sum(
            len(w.features._history[ENTITY].unique()) for w in self.merge.writers.values()
        )
        c.commits = self.partials.loop.commits + self.merge.loop.commits
        c.dead_letters = Counter(self.dead.sent)


def _memory_checkpoints() -> CheckpointFactory:
    stores: dict[tuple[str, str], CheckpointStore] = {}

    def factory(group: str, topic: str) -> CheckpointStore:
        return stores.setdefault((group, topic), MemoryCheckpoints())

    return factory
