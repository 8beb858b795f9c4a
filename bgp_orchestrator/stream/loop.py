"""One consume → process → store → commit loop for every consumer of the update stream.

The detector and the session stats differ only in what they do with records;
delivery, back-pressure, rebalances and stall detection are written here once.
Each turn of the loop:

1. **settle** newly assigned partitions: they stay paused until the
   processor has restored their state (:meth:`Processor.assign`, retried with
   backoff while e.g. Redis is down — a partition never runs with silently
   empty state) and said where to start;
2. **fetch** at most ``max_records`` records from the partitions not held;
3. **process** them (:meth:`Processor.process`: CPU work, results buffered);
4. **store** the buffered results (:meth:`Processor.store`). A dependency
   failure (:class:`~bgp_orchestrator.errors.ServiceUnavailable`: PostgreSQL,
   Redis, the dead-letter topic) pauses every partition and is retried with
   capped backoff; the loop keeps polling, so the consumer stays in its group,
   and resumes by itself;
5. **commit**, every ``commit_interval_s``, the offsets whose work is stored
   (:meth:`Processor.committable`). Nothing is committed ahead of stored work,
   so delivery is at least once.

Between turns the processor may hold partitions (:meth:`Processor.held`):
back-pressure when its buffers are full, flow control for windowing.

On revocation the loop drains what is pending (bounded by
``drain_timeout_s``), commits it and lets the processor save and drop the
partitions' state; what could not be stored is replayed by the next owner
from the last commit.

Every assigned partition has a :class:`~.progress.PartitionProgress`;
:meth:`ConsumeLoop.health` reports partitions with lag and no progress for
``stall_after_s``, and a loop that has not turned for as long (stuck in a
call that never returns), so a wedge is reported, not mistaken for death or
missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.service import Backoff, sleep_or_stop
from bgp_orchestrator.stream.pacing import CpuPacer
from bgp_orchestrator.stream.progress import PartitionProgress, ProgressStore, stall_report

log = logging.getLogger(__name__)

#: Where a partition starts after assignment: an offset, the log's beginning, or
#: ``None`` for the group's committed offset (the log's beginning when none).
#: "reset": the beginning, because the processor found its saved state belongs to a
#: different log (the broker lost it); the loop reports the reset.
Start = int | Literal["beginning", "reset"] | None


@dataclass(frozen=True)
class LogInfo:
    """What the loop knows of a partition's log when it is assigned."""

    committed: int | None
    end: int
    start: int = 0


class Processor(Protocol):
    """What a consumer does with its records. All methods run one at a time."""

    name: str

    async def assign(
        self, partitions: Sequence[int], logs: Mapping[int, LogInfo]
    ) -> dict[int, Start]:
        """Restore the state of newly assigned partitions; where each one starts.
        Raise ServiceUnavailable to be called again later."""
        ...

    async def revoke(self, partitions: Sequence[int]) -> None:
        """The partitions are no longer ours: save what can be saved, drop their state."""
        ...

    async def discard(self, partitions: Sequence[int]) -> None:
        """Drop the partitions' state and buffered results without saving anything: their
        log was reset under them (they are assigned again right after)."""
        ...

    async def process(self, batch: Mapping[int, Sequence[Any]]) -> None:
        """Handle fetched records (per partition, in offset order); buffer the results."""
        ...

    async def store(self, commit_due: bool) -> None:
        """Write buffered results (a bounded step of them); ``commit_due``: a commit
        follows, make as much committable as the step allows. Raise
        ServiceUnavailable when a dependency fails (buffers kept)."""
        ...

    async def drain(self) -> None:
        """Write everything buffered (before a revocation or a stop)."""
        ...

    def committable(self) -> dict[int, int]:
        """Per partition, the offset up to which every result is stored."""
        ...

    def held(self) -> set[int] | bool:
        """Partitions not to fetch from now (True: all of them)."""
        ...


@dataclass
class LoopOptions:
    poll_ms: int = 50
    max_records: int = 500
    commit_interval_s: float = 1.0
    publish_interval_s: float = 5.0
    stall_after_s: float = 60.0
    drain_timeout_s: float = 15.0


class ConsumeLoop:
    """Drives a :class:`Processor` over the partitions Kafka assigns to ``consumer``."""

    def __init__(
        self,
        processor: Processor,
        consumer_factory: Callable[[], Any],
        topic: str,
        *,
        options: LoopOptions | None = None,
        progress: ProgressStore | None = None,
        pacer: CpuPacer | None = None,
    ) -> None:
        """``pacer``: paces the loop's CPU use between turns (:mod:`.pacing`)."""
        self.processor = processor
        self.pacer = pacer
        self.consumer_factory = consumer_factory
        self.consumer: Any = None
        self.topic = topic
        self.options = options or LoopOptions()
        self.progress_store = progress
        self.partitions: dict[int, PartitionProgress] = {}
        self.commits = 0
        self.commit_failures = 0
        self._loading: set[int] = set()
        self._lock = asyncio.Lock()
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._assign_retry_at = 0.0
        self._outage: str | None = None
        self._outage_source = ""
        self._outage_since: float | None = None
        self._last_commit = 0.0
        self._last_publish = 0.0
        self._publish_failed = False
        self._phase = "starting"
        self._beat = time.monotonic()
        self._paused: set[int] = set()
        #: partition -> wall time of the last log reset detected on it
        self.resets: dict[int, float] = {}
        self.started = asyncio.Event()

    # --- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self._start(stop)
        if stop.is_set():
            return
        try:
            while not stop.is_set():
                self._turn("settling")
                await self._settle()
                self._turn("fetching")
                batch = await self.consumer.getmany(
                    timeout_ms=self.options.poll_ms, max_records=self.options.max_records
                )
                if batch:
                    self._turn("processing")
                    await self._process(batch)
                self._turn("storing")
                await self._store_and_commit()
                self._hold()
                await self._publish()
                if self.pacer is not None:
                    self._turn("pacing")
                    await self.pacer.pace()
        except BaseException:
            # A bug or a cancellation: commit nothing more (the state may be half
            # updated); the partitions' next owner replays from the last commit.
            self._turn("failed")
            await self.consumer.stop()
            raise
        self._turn("stopping")
        await self._finish()

    def _turn(self, phase: str) -> None:
        self._phase = phase
        self._beat = time.monotonic()

    async def _start(self, stop: asyncio.Event) -> None:
        from aiokafka.abc import ConsumerRebalanceListener

        loop = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await loop._revoked({tp.partition for tp in revoked})

            async def on_partitions_assigned(self, assigned: Any) -> None:
                loop._assigned({tp.partition for tp in assigned})

        backoff = Backoff(initial_s=0.5, maximum_s=15.0)
        while not stop.is_set():
            consumer = self.consumer_factory()
            try:
                await consumer.start()
            except Exception as exc:  # the broker is not there yet: keep trying
                if not _is_kafka_error(exc):
                    raise
                self._set_outage(f"cannot reach Kafka ({type(exc).__name__}: {exc})", "kafka")
                await consumer.stop()
                if await sleep_or_stop(stop, backoff.delay()):
                    return
                continue
            self.consumer = consumer
            break
        self._clear_outage("kafka")
        self.consumer.subscribe([self.topic], listener=Listener())
        self.started.set()

    # --- assignment -----------------------------------------------------------------

    def _assigned(self, partitions: set[int]) -> None:
        """Rebalance callback: new partitions stay paused until their state is restored."""
        from aiokafka import TopicPartition

        for p in partitions:
            if p not in self.partitions:
                self.partitions[p] = PartitionProgress(p)
                self._loading.add(p)
        loading = [TopicPartition(self.topic, p) for p in self._loading]
        if loading:
            self.consumer.pause(*loading)
            self._paused.update(self._loading)
        self._assign_retry_at = 0.0

    async def _settle(self) -> None:
        if not self._loading or time.monotonic() < self._assign_retry_at:
            return
        from aiokafka import TopicPartition

        wanted = sorted(self._loading)
        tps = {p: TopicPartition(self.topic, p) for p in wanted}
        try:
            ends = await self.consumer.end_offsets(list(tps.values()))
            beginnings = await self.consumer.beginning_offsets(list(tps.values()))
            logs = {
                p: LogInfo(await self.consumer.committed(tp), ends[tp], beginnings[tp])
                for p, tp in tps.items()
            }
            async with self._lock:
                current = [p for p in wanted if p in self._loading]  # a rebalance may intervene
                starts = await self.processor.assign(current, logs) if current else {}
        except ServiceUnavailable as exc:
            self._assign_failed(wanted, exc.message)
            return
        except Exception as exc:
            if not _is_kafka_error(exc):
                raise
            self._assign_failed(wanted, f"Kafka: {type(exc).__name__}: {exc}")
            return
        self._clear_outage("assign")
        from aiokafka.errors import IllegalStateError

        ready, lost = [], []
        async with self._lock:
            for p in current:
                if p not in self._loading:  # revoked while its state was being restored
                    lost.append(p)
                    continue
                start = starts.get(p)
                if start is None:
                    start = logs[p].committed  # None: no commit yet, so the log's beginning
                elif start == "reset":
                    self._log_reset(p, "its checkpoint describes a log that is gone")
                # Always an explicit seek: records fetched before the assignment (and
                # dropped unprocessed) must come again.
                try:
                    if isinstance(start, int):
                        self.consumer.seek(tps[p], start)
                    else:
                        await self.consumer.seek_to_beginning(tps[p])
                except IllegalStateError:
                    lost.append(p)
                    continue
                progress = self.partitions[p]
                progress.committed = logs[p].committed
                progress.position = start if isinstance(start, int) else None
                progress.highwater = logs[p].end
                progress.state = "running"
                progress.progress_at = time.time()
                self._loading.discard(p)
                ready.append(p)
            if lost:
                await self.processor.revoke(lost)
        if ready:
            log.info(
                "%s: partitions %s ready (%s)",
                self.processor.name,
                ready,
                ", ".join(f"{p}@{starts.get(p) or 'committed'}" for p in ready),
            )

    def _assign_failed(self, partitions: list[int], reason: str) -> None:
        log.warning(
            "%s: cannot restore partitions %s yet (%s); they stay paused",
            self.processor.name,
            partitions,
            reason,
        )
        self._set_outage(reason, "assign")
        self._assign_retry_at = time.monotonic() + self._backoff.delay()

    async def _revoked(self, partitions: set[int]) -> None:
        """Rebalance callback: store and commit what is pending, then let the state go."""
        running = sorted(p for p in partitions if p in self.partitions and p not in self._loading)
        self._loading -= partitions
        if running:
            await self._drain_and_commit(running, "revoked")
            async with self._lock:
                await self.processor.revoke(running)
        for p in partitions:
            self.partitions.pop(p, None)
            self._paused.discard(p)

    async def _drain_and_commit(self, partitions: list[int], why: str) -> None:
        try:
            async with self._lock:
                await asyncio.wait_for(self.processor.drain(), self.options.drain_timeout_s)
                offsets = self.processor.committable()
            await self._commit({p: o for p, o in offsets.items() if p in partitions})
        except (ServiceUnavailable, TimeoutError) as exc:
            log.warning(
                "%s: partitions %s %s with work not yet stored (%s); their next owner "
                "replays it from the last commit",
                self.processor.name,
                partitions,
                why,
                getattr(exc, "message", None) or type(exc).__name__,
            )

    # --- the batch ------------------------------------------------------------------

    async def _process(self, batch: Mapping[Any, Sequence[Any]]) -> None:
        mine: dict[int, Sequence[Any]] = {}
        reset = []
        for tp, records in batch.items():
            progress = self.partitions.get(tp.partition)
            if progress is None or tp.partition in self._loading or not records:
                continue  # revoked, or not restored yet: its records come again
            if progress.position is not None and records[0].offset < progress.position:
                # The consumer went back without a seek of ours: the broker's log is shorter
                # than our position (it lost the log and reset us to its beginning).
                reset.append(tp.partition)
                continue
            mine[tp.partition] = records
        if reset:
            await self._restart(reset)
        if not mine:
            return
        async with self._lock:
            # a rebalance may have taken partitions while we waited for the lock
            mine = {
                p: r for p, r in mine.items() if p in self.partitions and p not in self._loading
            }
            await self.processor.process(mine)
        for p, records in mine.items():
            progress = self.partitions[p]
            progress.position = records[-1].offset + 1
            progress.saw_end(self._highwater(p, progress.position))

    async def _restart(self, partitions: list[int]) -> None:
        """Partitions whose log was reset: drop their state, restore them again."""
        from aiokafka import TopicPartition

        for p in partitions:
            self._log_reset(p, "the broker moved the partition back to an earlier offset")
        async with self._lock:
            await self.processor.discard(partitions)
        for p in partitions:
            self.partitions[p] = PartitionProgress(p)
            self._loading.add(p)
        self.consumer.pause(*(TopicPartition(self.topic, p) for p in partitions))
        self._paused.update(partitions)

    def _log_reset(self, partition: int, why: str) -> None:
        self.resets[partition] = time.time()
        log.warning(
            "%s: the log of partition %d was reset (%s): its state is rebuilt from the new "
            "log; records the broker lost are gone",
            self.processor.name,
            partition,
            why,
        )

    def _highwater(self, partition: int, position: int) -> int:
        from aiokafka import TopicPartition

        seen = self.consumer.highwater(TopicPartition(self.topic, partition))
        return max(position, seen) if seen is not None else position

    async def _store_and_commit(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            return
        commit_due = now - self._last_commit >= self.options.commit_interval_s
        try:
            async with self._lock:
                await self.processor.store(commit_due)
                offsets = self.processor.committable() if commit_due else {}
        except ServiceUnavailable as exc:
            self._set_outage(exc.message, "store")
            self._retry_at = time.monotonic() + self._backoff.delay()
            return
        self._clear_outage("store")
        if commit_due:
            self._last_commit = now
            await self._commit(offsets)

    async def _commit(self, offsets: Mapping[int, int]) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import (
            CommitFailedError,
            IllegalGenerationError,
            IllegalStateError,
            RebalanceInProgressError,
            UnknownMemberIdError,
        )

        wanted: dict[Any, int] = {}
        for p, offset in offsets.items():
            progress = self.partitions.get(p)
            if progress is None or p in self._loading:
                continue
            if progress.committed is None or offset > progress.committed:
                wanted[TopicPartition(self.topic, p)] = offset
        if not wanted:
            return
        try:
            await self.consumer.commit(wanted)
        except (
            CommitFailedError,
            IllegalStateError,
            IllegalGenerationError,
            RebalanceInProgressError,
            UnknownMemberIdError,
        ) as exc:
            # A rebalance is under way: the partitions' next owner replays from the
            # last commit (idempotent), nothing is lost.
            self.commit_failures += 1
            log.warning(
                "%s: commit refused (%s); a rebalance is under way", self.processor.name, exc
            )
            return
        except Exception as exc:
            if not _is_kafka_error(exc):
                raise
            self.commit_failures += 1
            self._set_outage(
                f"cannot commit offsets to Kafka ({type(exc).__name__}: {exc})", "store"
            )
            self._retry_at = time.monotonic() + self._backoff.delay()
            return
        self.commits += 1
        now = time.time()
        for tp, offset in wanted.items():
            progress = self.partitions.get(tp.partition)
            if progress is not None:
                progress.committed_to(offset, now)
        await self._publish(force=True)

    def stored(self, partition: int, offset: int) -> None:
        """The processor stored its work on ``partition`` up to ``offset`` durably, in a
        checkpoint rather than by a commit: the partition progresses (no stall)."""
        progress = self.partitions.get(partition)
        if progress is not None:
            progress.stored_to(offset)

    # --- holding partitions -----------------------------------------------------------

    def _hold(self) -> None:
        """Pause what the processor holds, every partition during an outage, and the ones
        still loading; resume the rest."""
        from aiokafka import TopicPartition

        held = self.processor.held()
        if held is True or self._outage is not None:
            wanted = set(self.partitions)
        else:
            wanted = set(held) if held else set()
            wanted |= self._loading
        pause = wanted - self._paused
        resume = (self._paused - wanted) & set(self.partitions)
        assigned = {tp.partition for tp in self.consumer.assignment()}
        if pause & assigned:
            self.consumer.pause(*(TopicPartition(self.topic, p) for p in pause & assigned))
        if resume & assigned:
            self.consumer.resume(*(TopicPartition(self.topic, p) for p in resume & assigned))
        self._paused = wanted
        for p, progress in self.partitions.items():
            if p not in self._loading:
                progress.state = "paused" if p in wanted else "running"

    # --- outages, health, progress ------------------------------------------------------

    def _set_outage(self, reason: str, source: str) -> None:
        if self._outage is None:
            self._outage_since = time.time()
            log.warning("%s: %s; pausing consumption and retrying", self.processor.name, reason)
        self._outage = reason
        self._outage_source = source

    def _clear_outage(self, source: str) -> None:
        """The dependency that failed at ``source`` works again."""
        if self._outage is None or self._outage_source != source:
            return
        log.warning(
            "%s: recovered after %.0fs (%s); resuming",
            self.processor.name,
            time.time() - (self._outage_since or time.time()),
            self._outage,
        )
        self._outage = None
        self._outage_since = None
        self._backoff.reset()

    def health(self) -> list[str]:
        now = time.time()
        stall = self.options.stall_after_s
        problems = []
        stuck = time.monotonic() - self._beat
        if self.started.is_set() and stuck > stall:
            problems.append(f"the consume loop has not turned for {stuck:.0f}s (in {self._phase})")
        for progress in self.partitions.values():
            waited = progress.since_progress(now)
            if progress.state == "loading" and waited > stall:
                problems.append(
                    f"partition {progress.partition} has waited {waited:.0f}s "
                    "for its state to be restored"
                )
            elif progress.stalled(stall, now):
                problems.append(stall_report(progress, now))
        if problems and self._outage is not None:
            problems.append(f"cause: {self._outage}")
        return problems

    def stats(self) -> dict[str, Any]:
        now = time.time()
        return {
            "phase": self._phase,
            "commits": self.commits,
            "commit_failures": self.commit_failures,
            "outage": self._outage,
            "outage_since": self._outage_since,
            "log_resets": {p: self.resets[p] for p in sorted(self.resets)},
            "partitions": {p: self.partitions[p].as_dict(now) for p in sorted(self.partitions)},
        }

    async def _publish(self, force: bool = False) -> None:
        if self.progress_store is None:
            return
        now = time.monotonic()
        if not force and now - self._last_publish < self.options.publish_interval_s:
            return
        if force and now - self._last_publish < 1.0:
            return
        self._last_publish = now
        try:
            await self.progress_store.publish(
                self.processor.name,
                list(self.partitions.values()),
                note=self._outage,
                resets=self.resets,
            )
            self._publish_failed = False
        except Exception as exc:  # progress is for operators; never stop the stream for it
            if not self._publish_failed:
                log.warning("%s: cannot publish partition progress: %s", self.processor.name, exc)
            self._publish_failed = True

    # --- the end --------------------------------------------------------------------

    async def _finish(self) -> None:
        """A clean stop: store and commit what is pending, save state, leave the group."""
        running = sorted(p for p in self.partitions if p not in self._loading)
        try:
            if running:
                await self._drain_and_commit(running, "stopped")
                async with self._lock:
                    await self.processor.revoke(running)
        finally:
            await self.consumer.stop()


def _is_kafka_error(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError | OSError)
