"""The detection consumer: Kafka -> detectors -> PostgreSQL, at least once, losing nothing.

A :class:`~bgp_orchestrator.stream.loop.Processor` on the one consume loop
(:mod:`bgp_orchestrator.stream.loop`) and a
:class:`~bgp_orchestrator.service.Service`. For every fetch it decodes the
records (undecodable ones become dead letters with their partition and
offset) and runs the pipeline of each record's partition in slices of a few
thousand updates, yielding to the event loop between them, so the replica
keeps answering health checks and heartbeats while a large batch is judged
(a worker thread was measured slower: the loop's own work and the detectors
then contend for the interpreter lock on every switch). The results wait in a
:class:`~bgp_orchestrator.detection.buffer.ConflictBuffer`: tenant conflicts
are stored after every batch, global observations in bounded steps. A
partition's offset is committed, and its state checkpointed with that offset
(:mod:`checkpoint`), only when its conflicts and dead letters are stored; a
worker killed at any point replays from there, and upserts are idempotent, so
no conflict is lost or written twice.

Ray-free: the Serve deployment in ``deployments/detector.py`` hosts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.detection.buffer import ConflictBuffer
from bgp_orchestrator.detection.checkpoint import (
    CheckpointStore,
    StaleOwner,
    dump_state,
    load_state,
)
from bgp_orchestrator.detection.loader import ReferenceLoader
from bgp_orchestrator.detection.pipeline import BatchResult, Pipeline
from bgp_orchestrator.detection.sink import Aggregate, aggregate
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.service import Backoff, sleep_or_stop
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from bgp_orchestrator.stream.clients import update_stream_consumer
from bgp_orchestrator.stream.deadletters import DeadLetterSink
from bgp_orchestrator.stream.heap import LongLivedHeap
from bgp_orchestrator.stream.loop import ConsumeLoop, LogInfo, LoopOptions, Start
from bgp_orchestrator.stream.probe import Fingerprint, LogProbe
from bgp_orchestrator.stream.progress import ProgressStore

log = logging.getLogger(__name__)

#: Updates judged between two turns of the event loop (~50 ms of detection).
SLICE_UPDATES = 5_000
#: Global rows waiting to be stored above which consumption pauses (and below half of
#: which it resumes): a storm slows the stream down instead of filling the memory.
MAX_GLOBAL_BACKLOG = 100_000


@dataclass
class WorkerStats:
    records: int = 0
    updates: int = 0
    batches: int = 0
    conflicts_written: int = 0
    global_written: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    detector_errors: dict[str, int] = field(default_factory=dict)
    reference_version: str = ""
    partitions: list[int] = field(default_factory=list)
    first_batch_at: float = 0.0
    last_batch_at: float = 0.0
    busy_s: float = 0.0
    name: str = ""
    checkpoint_ms: float = 0.0
    checkpoints_saved: int = 0
    checkpoint_failures: int = 0
    log_resets: int = 0
    global_backlog: int = 0
    backpressure_pauses: int = 0
    #: the slowest recent batches: (wall time, ms, records, ms detecting, ms storing)
    slow_batches: list[tuple[float, float, int, float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dead_letters"] = dict(self.dead_letters)
        out["busy_s"] = round(self.busy_s, 3)
        return out


@dataclass
class _Detected:
    """What one fetch produced (built in the worker thread)."""

    aggregates: list[Aggregate]
    dead: list[DeadLetter]
    positions: dict[int, int]
    last: dict[int, Fingerprint]
    records: int
    updates: int


class DetectionWorker:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        checkpoints: CheckpointStore,
        bootstrap_servers: str,
        *,
        name: str = "detector",
        checkpoint_interval_s: float = 30.0,
        reference_interval_s: float = 2.0,
        max_records: int = 500,
        progress: ProgressStore | None = None,
        loop_options: LoopOptions | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        max_global_backlog: int = MAX_GLOBAL_BACKLOG,
    ) -> None:
        self.settings = settings
        self.max_global_backlog = max_global_backlog
        self.db = db
        self.checkpoints = checkpoints
        self.name = name
        self.token = f"{name}-{uuid.uuid4().hex[:8]}"
        self.checkpoint_interval_s = checkpoint_interval_s
        self.reference_interval_s = reference_interval_s
        self.loader = ReferenceLoader(settings)
        self.pipelines: dict[int, Pipeline] = {}
        self.positions: dict[int, int] = {}
        self.buffer = ConflictBuffer(db)
        self.dead = DeadLetterSink(bootstrap_servers, settings.kafka_dlq_topic)
        self.probe = LogProbe(bootstrap_servers, settings.kafka_topic)
        self.counters = WorkerStats(name=name)
        self.ready = asyncio.Event()
        options = loop_options or LoopOptions(
            max_records=max_records, stall_after_s=settings.stall_after_s
        )
        self.loop = ConsumeLoop(
            self,
            lambda: update_stream_consumer(
                bootstrap_servers, settings.detector_group, name, fetch_max_wait_ms=20
            ),
            settings.kafka_topic,
            options=options,
            progress=progress,
        )
        self._closers = list(closers)
        self._committable: dict[int, int] = {}
        self._checkpointed: dict[int, int] = {}
        self._limbo: dict[int, tuple[int, Pipeline]] = {}
        #: per partition, the last record processed (checkpoints carry it)
        self._last: dict[int, Fingerprint] = {}
        self._retired_errors: Counter[str] = Counter()
        self._held = False
        self._last_checkpoint = time.monotonic()
        self._last_reference = 0.0
        self.heap = LongLivedHeap()

    # --- the service ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        # The state is frozen at every checkpoint and reference load (stream/heap.py).
        self.heap.start()
        self._started_at = time.monotonic()
        if not await self._until_ready(stop):
            return
        self.ready.set()
        await self.loop.run(stop)

    async def _until_ready(self, stop: asyncio.Event) -> bool:
        """Load the reference and connect the dead-letter producer, retrying while
        PostgreSQL or Kafka are away. False if stopped first."""
        backoff = Backoff(initial_s=0.5, maximum_s=15.0)
        steps: list[Callable[[], Awaitable[None]]] = [
            lambda: self._refresh_reference(force=True),
            self.dead.start,
        ]
        for step in steps:
            while True:
                try:
                    await step()
                    break
                except ServiceUnavailable as exc:
                    self._not_ready = exc.message
                    log.warning("%s: not ready: %s; retrying", self.name, exc.message)
                    if await sleep_or_stop(stop, backoff.delay()):
                        return False
        self._not_ready = ""
        return True

    _not_ready = "starting"
    _started_at = 0.0

    def health(self) -> list[str]:
        problems = self.loop.health()
        waited = time.monotonic() - self._started_at
        if (
            not self.ready.is_set()
            and self._started_at
            and waited > self.loop.options.stall_after_s
        ):
            problems.append(f"not ready after {waited:.0f}s: {self._not_ready}")
        return problems

    def stats(self) -> dict[str, Any]:
        c = self.counters
        c.partitions = sorted(self.pipelines)
        c.detector_errors = self._detector_errors()
        c.dead_letters = Counter(self.dead.sent)
        c.global_backlog = self.buffer.global_backlog
        c.conflicts_written = self.buffer.tenant_written + self.buffer.global_written
        c.global_written = self.buffer.global_written
        return {**c.as_dict(), "loop": self.loop.stats(), "reference_errors": self.loader.errors}

    async def aclose(self) -> None:
        await self.dead.close()
        await self.probe.close()
        for close in self._closers:
            await close()

    def _detector_errors(self) -> dict[str, int]:
        total = Counter(self._retired_errors)
        for pipeline in self.pipelines.values():
            total.update(pipeline.errors)
        return dict(total)

    # --- partitions and state -------------------------------------------------------

    async def assign(
        self, partitions: Sequence[int], logs: Mapping[int, LogInfo]
    ) -> dict[int, Start]:
        starts: dict[int, Start] = {}
        restored: dict[int, tuple[int | None, Pipeline]] = {}
        for p in partitions:
            await self.checkpoints.claim(p, self.token)
            kept = self._limbo.get(p)
            if kept is not None and kept[0] == logs[p].committed:
                # Ours before this rebalance, and nobody committed since: the state in
                # memory is exactly the state at the committed offset.
                restored[p] = (kept[0], kept[1])
                starts[p] = kept[0]
                continue
            self._last.pop(p, None)
            start, state = await self._restore(p, logs[p])
            if start == "reset":
                self.counters.log_resets += 1
            restored[p] = (
                start if isinstance(start, int) else None,
                Pipeline(self.loader.reference, state),
            )
            starts[p] = start
        for p, (position, pipeline) in restored.items():
            pipeline.reference = self.loader.reference
            self.pipelines[p] = pipeline
            if position is not None:
                self.positions[p] = position
                self._committable[p] = position
                self._checkpointed[p] = position
        self._limbo.clear()
        return starts

    async def _restore(self, partition: int, info: LogInfo) -> tuple[Start, Any]:
        """Where a partition starts and with which state, from its checkpoint."""
        checkpoint = await self.checkpoints.load(partition)
        if checkpoint is not None:
            offset, blob = checkpoint
            if offset > info.end:
                # The topic was recreated (e.g. an in-memory broker restarted): the
                # checkpoint describes a log that no longer exists.
                log.warning(
                    "%s: checkpoint of partition %d is at offset %d beyond the end of the "
                    "log (%d): the log was reset; rebuilding the state from the new log",
                    self.name,
                    partition,
                    offset,
                    info.end,
                )
                return "reset", None
            try:
                state, last = await asyncio.to_thread(load_state, blob)
            except (ValueError, TypeError) as exc:
                log.error(
                    "%s: unusable checkpoint for partition %d (%s); rebuilding the state "
                    "from the retained log",
                    self.name,
                    partition,
                    exc,
                )
            else:
                if last is not None and last.offset >= info.start:
                    try:
                        found = await self.probe.fingerprint(partition, last.offset)
                    except Exception as exc:
                        raise ServiceUnavailable(
                            "kafka-unavailable",
                            f"cannot read back the record of partition {partition}'s "
                            f"checkpoint ({type(exc).__name__}: {exc})",
                        ) from exc
                    if found != last:
                        log.warning(
                            "%s: partition %d's record at offset %d is not the one its "
                            "checkpoint reflects: the log was reset; rebuilding the state "
                            "from the new log",
                            self.name,
                            partition,
                            last.offset,
                        )
                        return "reset", None
                if last is not None:
                    self._last[partition] = last
                log.info(
                    "%s: partition %d resumes from its checkpoint at offset %d",
                    self.name,
                    partition,
                    offset,
                )
                return offset, state
        if (info.committed or 0) > 0:
            # No usable checkpoint but a committed offset: rebuild the state from the
            # start of the retained log (the committed offset alone would skip the
            # history MOAS and visibility need); the conflicts raised again on the way
            # are idempotent upserts.
            return "beginning", None
        return None, None

    async def revoke(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            pipeline = self.pipelines.pop(p, None)
            position = self.positions.pop(p, None)
            stored = self._committable.pop(p, None)
            self._checkpointed.pop(p, None)
            if pipeline is None:
                continue
            self._retired_errors.update(pipeline.errors)
            pipeline.errors.clear()
            if position is None or stored != position:
                continue  # work not stored: the next owner replays it from the last commit
            try:
                await self._save_checkpoint(p, position, pipeline)
            except (ServiceUnavailable, StaleOwner) as exc:
                log.warning("%s: partition %d left without a checkpoint: %s", self.name, p, exc)
                continue
            self._limbo[p] = (position, pipeline)

    async def discard(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            pipeline = self.pipelines.pop(p, None)
            if pipeline is not None:
                self._retired_errors.update(pipeline.errors)
            for table in (self.positions, self._committable, self._checkpointed, self._last):
                table.pop(p, None)
            self._limbo.pop(p, None)

    async def _save_checkpoint(self, partition: int, offset: int, pipeline: Pipeline) -> None:
        started = time.perf_counter()
        blob = await asyncio.to_thread(dump_state, pipeline.state, self._last.get(partition))
        await self.checkpoints.save(partition, offset, blob, self.token)
        self.counters.checkpoint_ms = round((time.perf_counter() - started) * 1000, 1)
        self.counters.checkpoints_saved += 1
        self._checkpointed[partition] = offset

    # --- the batch ------------------------------------------------------------------

    async def process(self, batch: Mapping[int, Sequence[Any]]) -> None:
        started = time.perf_counter()
        if not self.counters.first_batch_at:
            self.counters.first_batch_at = time.time()
        detected = await self._detect(batch)
        self.buffer.add(detected.aggregates)
        for letter in detected.dead:
            self.dead.add(letter)
        self.positions.update(detected.positions)
        self._last.update(detected.last)
        c = self.counters
        c.records += detected.records
        c.updates += detected.updates
        c.batches += 1
        c.last_batch_at = time.time()
        elapsed = time.perf_counter() - started
        c.busy_s += elapsed
        self._detect_ms = elapsed * 1000
        self._batch_records = detected.records

    _detect_ms = 0.0
    _batch_records = 0

    async def _detect(self, batch: Mapping[int, Sequence[Any]]) -> _Detected:
        """Decode and judge one fetch, ``SLICE_UPDATES`` updates at a time: between slices
        the event loop runs (health checks, the consumer's heartbeats and fetches)."""
        dead: list[DeadLetter] = []
        conflicts = []
        positions = {}
        last = {}
        records_n = updates_n = 0
        topic = self.settings.kafka_topic
        for partition, records in batch.items():
            pipeline = self.pipelines[partition]
            updates = []
            for record in records:
                try:
                    updates.extend(codec.decode_batch(record.value))
                except Malformed as exc:
                    dead.append(
                        DeadLetter.from_error(
                            exc,
                            source="kafka",
                            position=f"{topic}/{partition}@{record.offset}",
                            payload=record.value,
                        )
                    )
            result = BatchResult()
            for start in range(0, len(updates), SLICE_UPDATES):
                part = pipeline.process(updates[start : start + SLICE_UPDATES])
                result.conflicts.extend(part.conflicts)
                result.invalid.extend(part.invalid)
                result.updates += part.updates
                await asyncio.sleep(0)
            for update, reason in result.invalid:
                dead.append(
                    DeadLetter(
                        "invalid-prefix",
                        reason,
                        "kafka",
                        f"{topic}/{partition}@{records[0].offset}-{records[-1].offset}",
                        repr(update)[:2000],
                    )
                )
            conflicts.extend(result.conflicts)
            records_n += len(records)
            updates_n += result.updates
            positions[partition] = records[-1].offset + 1
            last[partition] = Fingerprint.of(records[-1])
        return _Detected(aggregate(conflicts), dead, positions, last, records_n, updates_n)

    async def store(self, commit_due: bool) -> None:
        started = time.perf_counter()
        await self._maybe_refresh_reference()  # every turn, so an idle detector follows too
        await self.buffer.write_tenant()
        await self.dead.flush()
        if commit_due or not self.buffer.segments:
            # Idle writer: global rows go out now (low latency); busy: they keep merging
            # in the open buffer until the next commit point (more aggregation per row).
            checkpoints = await self._dump_due_checkpoints() if commit_due else {}
            self.buffer.close_segment(self.positions, checkpoints)
        await self._complete(await self.buffer.write_global())
        self._note_slow(time.perf_counter() - started)
        self._collect_garbage()
        backlog = self.buffer.global_backlog
        if backlog > self.max_global_backlog:
            if not self._held:
                self.counters.backpressure_pauses += 1
                log.info(
                    "%s: %d global observations wait to be stored; pausing consumption",
                    self.name,
                    backlog,
                )
            self._held = True
        elif backlog < self.max_global_backlog // 2:
            self._held = False

    async def drain(self) -> None:
        await self.buffer.write_tenant()
        await self.dead.flush()
        self.buffer.close_segment(self.positions)
        await self._complete(await self.buffer.write_global(limit=0))

    def committable(self) -> dict[int, int]:
        return {p: o for p, o in self._committable.items() if p in self.pipelines}

    def held(self) -> bool:
        return self._held

    async def _complete(self, segments: list[Any]) -> None:
        """Segments fully stored: their positions may be committed, their checkpoints saved."""
        for segment in segments:
            for p, offset in segment.positions.items():
                if p in self.pipelines:
                    self._committable[p] = max(offset, self._committable.get(p, 0))
            for p, (offset, blob) in segment.checkpoints.items():
                if p not in self.pipelines:
                    continue
                try:
                    await self.checkpoints.save(p, offset, blob, self.token)
                    self.counters.checkpoints_saved += 1
                    self._checkpointed[p] = offset
                except (ServiceUnavailable, StaleOwner) as exc:
                    # The checkpoint only shortens a replay: commits go on without it.
                    self.counters.checkpoint_failures += 1
                    log.warning("%s: checkpoint of partition %d not saved: %s", self.name, p, exc)

    async def _dump_due_checkpoints(self) -> dict[int, tuple[int, bytes]]:
        if time.monotonic() - self._last_checkpoint < self.checkpoint_interval_s:
            return {}
        self._last_checkpoint = time.monotonic()
        started = time.perf_counter()
        out = {}
        for p, pipeline in self.pipelines.items():
            position = self.positions.get(p)
            if position is None or self._checkpointed.get(p) == position:
                continue
            blob = await asyncio.to_thread(dump_state, pipeline.state, self._last.get(p))
            out[p] = (position, blob)
        self.counters.checkpoint_ms = round((time.perf_counter() - started) * 1000, 1)
        self.heap.settled()
        return out

    def _note_slow(self, store_s: float) -> None:
        total_ms = self._detect_ms + store_s * 1000
        if total_ms > 50:
            slow = self.counters.slow_batches
            slow.append(
                (
                    round(time.time(), 3),
                    round(total_ms, 1),
                    self._batch_records,
                    round(self._detect_ms, 1),
                    round(store_s * 1000, 1),
                )
            )
            del slow[:-10]
        self._detect_ms = 0.0
        self._batch_records = 0

    def _collect_garbage(self) -> None:
        self.heap.maybe_collect()

    # --- reference data -------------------------------------------------------------

    async def _maybe_refresh_reference(self) -> None:
        if time.monotonic() - self._last_reference < self.reference_interval_s:
            return
        try:
            await self._refresh_reference()
        except ServiceUnavailable as exc:
            if not self._reference_failing:
                log.warning(
                    "%s: reference reload failed (%s); keeping the current one", self.name, exc
                )
            self._reference_failing = True
        else:
            self._reference_failing = False

    _reference_failing = False

    async def _refresh_reference(self, force: bool = False) -> None:
        self._last_reference = time.monotonic()
        async with self.db.connection() as conn:
            changed = await self.loader.refresh(conn)
        if not changed and not force:
            return
        for pipeline in self.pipelines.values():
            pipeline.reference = self.loader.reference
        self.heap.settled(collect=True)  # the VRP and AS-relationship indexes live on
        self.counters.reference_version = self.loader.reference.version
        log.info(
            "%s: reference %s (%d monitored prefixes)",
            self.name,
            self.loader.reference.version,
            len(self.loader.reference.monitored),
        )
