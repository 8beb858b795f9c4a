"""Publishes updates to ``bgp.updates`` in per-partition batches; session events go to all.

Nothing is counted as published before the broker acknowledged it. Each partition
of the update topic, and the dead-letter topic, is a *lane*: updates are buffered
per lane and sent as one msgpack record per batch, with at most one record per
lane in flight. So a batch the broker refused can be sent again (after a backoff,
a bounded number of times) without overtaking the batches after it, and a
partition keeps its order. When a batch still fails, the publisher fails: the
error (:class:`PublishFailed`, code ``kafka-publish-failed``, naming the broker,
topic and partition) is raised by the next ``publish``, ``dead_letter``,
``flush`` or ``close``, whichever task the failure happened in.

Callers may tag a ``publish`` with a position in their input (a line number, a
record number). :attr:`UpdatePublisher.acknowledged` is the last position up to
which every update and dead letter given before it was acknowledged: where a
replay can resume without losing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.prefix import Partitioner
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.errors import BgpoError, ServiceUnavailable
from bgp_orchestrator.ingest.deadletter import DeadLetter

#: Dead letters sent at once (each is a record of its own; aiokafka batches them).
DEAD_LETTER_BATCH = 1000


class PublishFailed(ServiceUnavailable):
    """The broker did not acknowledge a batch after every retry (or refused it for good).

    Nothing from that batch on is counted as published; ``details`` holds the
    broker, topic, partition and attempts.
    """


@dataclass
class PublishStats:
    """What the broker acknowledged (updates as given to ``publish``, once each)."""

    updates: int = 0
    records: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.updates / elapsed if elapsed > 0 else 0.0


async def ensure_topics(bootstrap: str, topic: str, dlq_topic: str, partitions: int) -> int:
    """Create the updates and dead-letter topics when missing; returns the partition count."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [NewTopic(topic, partitions, 1), NewTopic(dlq_topic, 1, 1)]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        described = await admin.describe_topics([topic])
        return len(described[0]["partitions"]) or partitions
    except (KafkaError, OSError) as exc:
        raise ServiceUnavailable(
            "kafka-unavailable", f"cannot create the Kafka topics at {bootstrap}: {exc}"
        ) from exc
    finally:
        await admin.close()


class _Lane:
    """One partition of the update topic, or the dead-letter topic (``partition`` None).

    ``buffer`` holds ``(count, payload)`` pairs: for a partition, ``count`` updates
    already encoded as a fragment of a record (:func:`codec.encode_rows`); for the
    dead-letter topic one letter, ``(code, encoded letter)``. Counts are in updates
    (or letters): ``waiting`` buffered, ``taken`` moved into records, ``acked`` of
    those acknowledged (always the first ones: one record is in flight at a time).
    """

    __slots__ = ("acked", "buffer", "partition", "since", "taken", "task", "waiting")

    def __init__(self, partition: int | None) -> None:
        self.partition = partition
        self.buffer: list[tuple[int, Any]] = []
        self.waiting = 0
        self.since: float | None = None  # when the oldest buffered item arrived
        self.taken = 0
        self.acked = 0
        self.task: asyncio.Task[None] | None = None

    def take(self, limit: int) -> tuple[int, list[Any]]:
        """Payloads from the front of the buffer, at most ``limit`` items (at least one
        entry)."""
        count = 0
        end = 0
        for entry_count, _ in self.buffer:
            if end and count + entry_count > limit:
                break
            count += entry_count
            end += 1
        payloads = [payload for _, payload in self.buffer[:end]]
        del self.buffer[:end]
        self.waiting -= count
        self.taken += count
        if not self.buffer:
            self.since = None
        return count, payloads


@dataclass
class _Checkpoint:
    position: object
    updates: int
    marks: list[int]  # each lane's item count when the checkpoint was taken


class UpdatePublisher:
    """The producer side of ``bgp.updates`` (see the module's docstring)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        partitions: int,
        batch_size: int = 500,
        linger_s: float = 0.02,
        *,
        max_record_updates: int | None = None,
        max_buffered: int | None = None,
        retries: int = 3,
        retry_backoff_s: float = 0.5,
        request_timeout_s: float = 15.0,
        eager: bool = False,
    ) -> None:
        """``batch_size`` updates make a record (sooner after ``linger_s``); while a
        partition's record is in flight its next one may grow to ``max_record_updates``,
        and ``publish`` waits while a partition has more than ``max_buffered`` waiting.
        ``eager`` sends whatever a partition has as soon as its previous record is
        acknowledged (a live collector: latency before batching; batches still form
        while a record is in flight). A record the broker did not acknowledge within
        ``request_timeout_s`` (aiokafka retries inside that) is sent again up to
        ``retries`` times, ``retry_backoff_s`` doubling in between."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.partitions = partitions
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_record_updates = max_record_updates or 4 * batch_size
        self.max_buffered = max_buffered or 16 * batch_size
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self.request_timeout_s = request_timeout_s
        self.eager = eager
        self.stats = PublishStats()
        #: The last position (as given to ``publish``) up to which everything before it
        #: was acknowledged; None until the first one is.
        self.acknowledged: object = None
        self._lanes = [_Lane(p) for p in range(partitions)]
        self._dead = _Lane(None)
        self._all_lanes = [*self._lanes, self._dead]
        self._partition_of = Partitioner(partitions)
        self._checkpoints: deque[_Checkpoint] = deque()
        self._progress = asyncio.Event()
        self._producer: Any = None
        self._timer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._reported = False
        self._flushing = False
        self._closing = False

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=5,
            acks="all",
            max_request_size=16 * 1024 * 1024,
            request_timeout_ms=int(self.request_timeout_s * 1000),
        )
        try:
            await self._producer.start()
        except Exception as exc:
            raise ServiceUnavailable(
                "kafka-unavailable", f"cannot connect to Kafka at {self.bootstrap}: {exc}"
            ) from exc
        self._timer = asyncio.create_task(self._linger())

    async def __aenter__(self) -> UpdatePublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the caller's side ------------------------------------------------------------

    async def publish(self, updates: Iterable[Update], position: object = None) -> None:
        """Encode updates for their partitions (sending full batches); ``position``, if
        given, becomes :attr:`acknowledged` once all of them and everything before are."""
        self._check()
        groups: list[list[Update]] = [[] for _ in self._lanes]
        hashes = self._partition_of.hashes
        partition_of = self._partition_of
        partitions = self.partitions
        count = 0
        for update in updates:
            count += 1
            prefix = update[4]
            if prefix:
                value = hashes.young.get(prefix)
                partition = partition_of(prefix) if value is None else value % partitions
                groups[partition].append(update)
            else:  # a session event: every partition holds routes of that session
                for group in groups:
                    group.append(update)
        now = time.monotonic()
        threshold = 1 if self.eager else self.batch_size
        limit = self.max_record_updates
        backlog = False
        for lane, group in zip(self._lanes, groups, strict=True):
            if group:
                for begin in range(0, len(group), limit):
                    piece = group[begin : begin + limit]
                    lane.buffer.append((len(piece), codec.encode_rows(piece)))
                lane.waiting += len(group)
                if lane.since is None:
                    lane.since = now
            if lane.waiting:
                if lane.waiting >= threshold and lane.task is None:
                    self._start(lane)
                backlog = backlog or lane.waiting > self.max_buffered
        self._checkpoint(position, count)
        if backlog:
            await self._wait_for_room()
        else:
            # a turn for the event loop: the sends started here, and the acks of earlier
            # ones, make progress while the caller prepares its next batch
            await asyncio.sleep(0)

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Queue a dead letter; it is sent at once, and counted when acknowledged."""
        self._check()
        self._dead.buffer.append((1, (letter.code, letter.encode())))
        self._dead.waiting += 1
        if self._dead.task is None:
            self._start(self._dead)

    async def wait_below(self, limit: int) -> None:
        """Wait while more than ``limit`` updates and dead letters are unacknowledged: a
        source whose dead letters come faster than the broker takes them waits here."""
        while self.unacknowledged > limit:
            self._check()
            self._progress.clear()
            await self._progress.wait()
        self._check()

    def mark(self, position: object) -> None:
        """``position`` becomes :attr:`acknowledged` once everything given so far is."""
        self._checkpoint(position, 0)

    async def flush(self) -> None:
        """Send everything buffered and wait until the broker acknowledged it."""
        self._check()
        self._flushing = True
        try:
            while True:
                for lane in self._all_lanes:
                    if lane.buffer and lane.task is None:
                        self._start(lane)
                tasks = [lane.task for lane in self._all_lanes if lane.task is not None]
                if not tasks:
                    break
                await asyncio.wait(tasks)
                self._check()
        finally:
            self._flushing = False
        self._check()

    async def close(self, *, flush: bool = True) -> None:
        """Flush (unless told not to, or the publisher failed) and stop the producer;
        raises the failure unless an earlier call did (so that a ``finally: close()``
        does not hide the error being handled)."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        try:
            if flush and self._producer is not None and self._failure is None:
                await self.flush()
        finally:
            for lane in self._all_lanes:
                if lane.task is not None:
                    lane.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await lane.task
            if self._producer is not None:
                producer, self._producer = self._producer, None
                await producer.stop()
        if self._failure is not None and not self._reported:
            self._check()

    @property
    def unacknowledged(self) -> int:
        """Updates (and dead letters) buffered or in flight; a session event counts once
        per partition."""
        return sum(lane.waiting + lane.taken - lane.acked for lane in self._all_lanes)

    # -- the sending side ---------------------------------------------------------------

    def _check(self) -> None:
        if self._failure is not None:
            self._reported = True
            raise self._failure

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._progress.set()

    def _checkpoint(self, position: object, updates: int) -> None:
        marks = [lane.taken + lane.waiting for lane in self._all_lanes]
        self._checkpoints.append(_Checkpoint(position, updates, marks))
        self._advance()

    def _advance(self) -> None:
        lanes = self._all_lanes
        checkpoints = self._checkpoints
        while checkpoints:
            first = checkpoints[0]
            for lane, mark in zip(lanes, first.marks, strict=True):
                if lane.acked < mark:
                    return
            checkpoints.popleft()
            self.stats.updates += first.updates
            if first.position is not None:
                self.acknowledged = first.position

    async def _wait_for_room(self) -> None:
        while any(lane.waiting > self.max_buffered for lane in self._lanes):
            self._progress.clear()
            await self._progress.wait()
            self._check()

    def _start(self, lane: _Lane) -> None:
        if self._failure is None:
            lane.task = asyncio.create_task(self._drain(lane))

    def _due(self, lane: _Lane) -> bool:
        if not lane.buffer:
            return False
        if self._flushing or self.eager or lane.partition is None:
            return True
        if lane.waiting >= self.batch_size:
            return True
        return lane.since is not None and time.monotonic() - lane.since >= self.linger_s

    async def _drain(self, lane: _Lane) -> None:
        """Send the lane's buffer, one record at a time, while it is due."""
        try:
            while self._due(lane):
                if lane.partition is None:
                    count, letters = lane.take(DEAD_LETTER_BATCH)
                    await self._deliver_letters(letters)
                else:
                    count, fragments = lane.take(self.max_record_updates)
                    await self._deliver(lane.partition, count, fragments)
                    self.stats.records += 1
                lane.acked += count
                self._advance()
                self._progress.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)
        finally:
            lane.task = None

    async def _deliver(self, partition: int, count: int, fragments: list[memoryview]) -> None:
        from aiokafka.errors import KafkaError

        value = codec.join_rows(count, fragments)
        attempt = 0
        while True:
            attempt += 1
            try:
                future = await self._producer.send(self.topic, value, partition=partition)
                await future
                return
            except KafkaError as exc:
                if attempt > self.retries or not _retriable(exc):
                    raise self._failed(self.topic, partition, count, attempt, exc) from exc
            await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))

    async def _deliver_letters(self, items: list[tuple[str, bytes]]) -> None:
        from aiokafka.errors import KafkaError

        pending = items
        attempt = 0
        while pending:
            attempt += 1
            failed: list[tuple[str, bytes]] = []
            error: KafkaError | None = None
            sent = []
            for item in pending:
                try:
                    sent.append((item, await self._producer.send(self.dlq_topic, item[1])))
                except KafkaError as exc:
                    failed.append(item)
                    error = exc
            for item, future in sent:
                try:
                    await future
                except KafkaError as exc:
                    failed.append(item)
                    error = exc
                else:
                    counts = self.stats.dead_letters
                    counts[item[0]] = counts.get(item[0], 0) + 1
            if error is None:
                return
            if attempt > self.retries or not _retriable(error):
                raise self._failed(self.dlq_topic, 0, len(failed), attempt, error) from error
            await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            pending = failed

    def _failed(
        self, topic: str, partition: int, count: int, attempts: int, exc: BaseException
    ) -> BgpoError:
        what = "dead letters" if topic == self.dlq_topic else "updates"
        name = type(exc).__name__
        cause = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"  # aiokafka's have it
        return PublishFailed(
            "kafka-publish-failed",
            f"the Kafka broker at {self.bootstrap} did not acknowledge {count} {what} for "
            f"{topic} partition {partition} after {attempts} attempt(s) ({cause}); "
            "check the broker (BGPO_KAFKA_BOOTSTRAP_SERVERS)",
            "partition",
            partition,
            {
                "bootstrap": self.bootstrap,
                "topic": topic,
                "partition": partition,
                "attempts": attempts,
                "cause": cause,
            },
        )

    async def _linger(self) -> None:
        """Start sending partitions whose oldest update waited ``linger_s``."""
        try:
            while not self._closing:
                await asyncio.sleep(self.linger_s / 2)
                for lane in self._lanes:
                    if lane.task is None and self._due(lane):
                        self._start(lane)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaces at the next publish/flush/close
            self._fail(exc)


def _retriable(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaTimeoutError

    return bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)
