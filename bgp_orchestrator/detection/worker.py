"""The detection consumer: Kafka -> detectors -> PostgreSQL, at least once, losing nothing.

For every batch: decode the records (undecodable ones go to the dead-letter
topic with their partition and offset), run the pipeline of the record's
partition, upsert the conflicts, and only then commit the offsets. A worker
killed at any point replays from the last commit; upserts are idempotent, so
no conflict is lost or written twice. Per-partition state is checkpointed
with the offset it reflects (see :mod:`checkpoint`).

Ray-free: the Serve deployment in ``deployments/detector.py`` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.detection.checkpoint import CheckpointStore, dump_state, load_state
from bgp_orchestrator.detection.loader import ReferenceLoader
from bgp_orchestrator.detection.pipeline import Pipeline
from bgp_orchestrator.detection.sink import WriteFilter, aggregate
from bgp_orchestrator.ingest.consumers import update_stream_clients
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage import conflicts as conflict_store
from bgp_orchestrator.storage.database import Database

log = logging.getLogger(__name__)

FULL_GC_S = 600.0


@dataclass
class WorkerStats:
    records: int = 0
    updates: int = 0
    batches: int = 0
    conflicts_written: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    detector_errors: dict[str, int] = field(default_factory=dict)
    reference_version: str = ""
    partitions: list[int] = field(default_factory=list)
    first_batch_at: float = 0.0
    last_batch_at: float = 0.0
    busy_s: float = 0.0
    name: str = ""
    checkpoint_ms: float = 0.0
    #: the slowest recent batches: (wall time, ms, records, ms detecting, ms storing)
    slow_batches: list[tuple[float, float, int, float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "updates": self.updates,
            "batches": self.batches,
            "conflicts_written": self.conflicts_written,
            "dead_letters": dict(self.dead_letters),
            "detector_errors": dict(self.detector_errors),
            "reference_version": self.reference_version,
            "partitions": list(self.partitions),
            "first_batch_at": self.first_batch_at,
            "last_batch_at": self.last_batch_at,
            "name": self.name,
            "busy_s": round(self.busy_s, 3),
            "slow_batches": list(self.slow_batches),
            "checkpoint_ms": self.checkpoint_ms,
        }


class DetectionWorker:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        checkpoints: CheckpointStore,
        bootstrap_servers: str,
        *,
        name: str = "detector",
        checkpoint_interval_s: float = 10.0,
        reference_interval_s: float = 2.0,
        max_records: int = 500,
        on_batch: Callable[[WorkerStats], None] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.checkpoints = checkpoints
        self.bootstrap = bootstrap_servers
        self.name = name
        self.checkpoint_interval_s = checkpoint_interval_s
        self.reference_interval_s = reference_interval_s
        self.max_records = max_records
        self.on_batch = on_batch
        self.loader = ReferenceLoader(settings)
        self.pipelines: dict[int, Pipeline] = {}
        self.positions: dict[int, int] = {}
        self.filter = WriteFilter()
        self.stats = WorkerStats(name=name)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._last_checkpoint = 0.0
        self._last_reference = 0.0
        self._last_full_gc = 0.0

    # --- lifecycle ----------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        from aiokafka.abc import ConsumerRebalanceListener

        worker = self

        class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await worker._save_checkpoints([tp.partition for tp in revoked])
                for tp in revoked:
                    worker.pipelines.pop(tp.partition, None)
                    worker.positions.pop(tp.partition, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                for tp in assigned:
                    await worker._assign(tp)
                worker.stats.partitions = sorted(worker.pipelines)

        # Garbage collection tuned for latency: the detector state is millions of
        # long-lived objects, and a full collection walks all of them (80-100 ms on a
        # 100,000-prefix table, a p99 spike every few seconds at 20,000 updates/s).
        # Young collections stay automatic; long-lived objects are frozen at every
        # checkpoint; a full collection (for cyclic garbage) runs every FULL_GC_S.
        gc.set_threshold(10_000, 10, 1_000_000)
        self._last_full_gc = time.monotonic()
        await self._refresh_reference(force=True)
        self._consumer, self._producer = update_stream_clients(
            self.bootstrap, self.settings.detector_group, self.name, fetch_max_wait_ms=20
        )
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe([self.settings.kafka_topic], listener=Rebalance())
        self.ready.set()
        try:
            while not self._stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=50, max_records=self.max_records)
                if batch:
                    await self._process(batch)
                await self._housekeeping()
        finally:
            with contextlib.suppress(Exception):
                await self._save_checkpoints(list(self.pipelines))
            await self._consumer.stop()
            await self._producer.stop()

    # --- partitions and state -------------------------------------------------------

    async def _assign(self, tp: Any) -> None:
        checkpoint = await self.checkpoints.load(tp.partition)
        state = None
        if checkpoint is not None:
            offset, blob = checkpoint
            end = (await self._consumer.end_offsets([tp]))[tp]
            if offset > end:
                # The topic was recreated (e.g. an in-memory broker restarted): the
                # checkpoint describes a log that no longer exists.
                log.warning(
                    "%s: checkpoint of partition %d is at offset %d beyond the end "
                    "of the log (%d); discarding it",
                    self.name,
                    tp.partition,
                    offset,
                    end,
                )
                checkpoint = None
        if checkpoint is not None:
            offset, blob = checkpoint
            try:
                state = load_state(blob)
                self._consumer.seek(tp, offset)
                self.positions[tp.partition] = offset
                log.info(
                    "%s: partition %d resumes from checkpoint at offset %d",
                    self.name,
                    tp.partition,
                    offset,
                )
            except (ValueError, TypeError) as exc:
                log.error(
                    "%s: unusable checkpoint for partition %d (%s); starting empty",
                    self.name,
                    tp.partition,
                    exc,
                )
                state = None
        if state is None and (await self._consumer.committed(tp) or 0) > 0:
            # No usable checkpoint but a committed offset: rebuild the state from the
            # start of the retained log (the committed offset alone would skip the
            # history MOAS and visibility need); the conflicts raised again on the way
            # are idempotent upserts. Without a committed offset the consumer starts
            # at the beginning anyway.
            await self._consumer.seek_to_beginning(tp)
            self.positions.pop(tp.partition, None)
        self.pipelines[tp.partition] = Pipeline(self.loader.reference, state)

    async def _save_checkpoints(self, partitions: list[int]) -> None:
        started = time.perf_counter()
        for partition in partitions:
            pipeline = self.pipelines.get(partition)
            offset = self.positions.get(partition)
            if pipeline is not None and offset is not None:
                await self.checkpoints.save(partition, offset, dump_state(pipeline.state))
        self._last_checkpoint = time.monotonic()
        self.stats.checkpoint_ms = round((time.perf_counter() - started) * 1000, 1)
        # The detector state is millions of long-lived objects: move them out of the
        # collector's way, or every full collection walks them (100 ms+ pauses).
        gc.freeze()

    async def _refresh_reference(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_reference < self.reference_interval_s:
            return
        self._last_reference = now
        async with self.db.connection() as conn:
            changed = await self.loader.refresh(conn)
        if changed:
            for pipeline in self.pipelines.values():
                pipeline.reference = self.loader.reference
            gc.collect()
            gc.freeze()  # the VRP and AS-relationship indexes live until the next reload
            self.stats.reference_version = self.loader.reference.version
            log.info(
                "%s: reference %s (%d monitored prefixes)",
                self.name,
                self.loader.reference.version,
                len(self.loader.reference.monitored),
            )

    async def _housekeeping(self) -> None:
        try:
            await self._refresh_reference()
        except Exception:
            log.exception("%s: reference reload failed; keeping the current one", self.name)
        if time.monotonic() - self._last_checkpoint > self.checkpoint_interval_s:
            await self._save_checkpoints(list(self.pipelines))
        if time.monotonic() - self._last_full_gc > FULL_GC_S:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full_gc = time.monotonic()

    # --- the batch ----------------------------------------------------------------

    async def _process(self, batch: dict[Any, list[Any]]) -> None:
        started = time.perf_counter()
        if not self.stats.first_batch_at:
            self.stats.first_batch_at = time.time()
        dead: list[DeadLetter] = []
        conflicts = []
        offsets = {}
        for tp, records in batch.items():
            pipeline = self.pipelines.get(tp.partition)
            if pipeline is None:  # assigned between fetch and now
                pipeline = self.pipelines[tp.partition] = Pipeline(self.loader.reference)
            updates = []
            for record in records:
                try:
                    updates.extend(codec.decode_batch(record.value))
                except Malformed as exc:
                    dead.append(
                        DeadLetter.from_error(
                            exc,
                            source="kafka",
                            position=f"{tp.topic}/{tp.partition}@{record.offset}",
                            payload=record.value,
                        )
                    )
            result = pipeline.process(updates)
            for update, reason in result.invalid:
                dead.append(
                    DeadLetter(
                        "invalid-prefix",
                        reason,
                        "kafka",
                        f"{tp.topic}/{tp.partition}@{records[0].offset}-{records[-1].offset}",
                        repr(update)[:2000],
                    )
                )
            conflicts.extend(result.conflicts)
            self.stats.records += len(records)
            self.stats.updates += result.updates
            offsets[tp] = records[-1].offset + 1
            self.positions[tp.partition] = records[-1].offset + 1
            for name, count in pipeline.errors.items():
                self.stats.detector_errors[name] = count
        aggregates = self.filter.needed(aggregate(conflicts))
        detected = time.perf_counter()
        if dead:
            await asyncio.gather(*(self._dead_letter(d) for d in dead))
        if aggregates:
            async with self.db.transaction() as conn:
                await conflict_store.upsert(conn, aggregates)
            self.filter.written(aggregates)
            self.stats.conflicts_written += len(aggregates)
        stored = time.perf_counter()
        await self._consumer.commit(offsets)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        elapsed = time.perf_counter() - started
        self.stats.busy_s += elapsed
        if elapsed > 0.05:
            slow = self.stats.slow_batches
            slow.append(
                (
                    round(time.time(), 3),
                    round(elapsed * 1000, 1),
                    sum(len(r) for r in batch.values()),
                    round((detected - started) * 1000, 1),
                    round((stored - detected) * 1000, 1),
                )
            )
            del slow[:-10]
        if self.on_batch is not None:
            try:
                self.on_batch(self.stats)
            except Exception:  # metrics export must never stop detection
                log.exception("%s: the batch callback failed", self.name)

    async def _dead_letter(self, letter: DeadLetter) -> None:
        self.stats.dead_letters[letter.code] += 1
        await self._producer.send_and_wait(self.settings.kafka_dlq_topic, letter.encode())
