"""Publishes updates to ``bgp.updates`` in per-partition batches; session events go to all."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.prefix import partition_for
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.ingest.deadletter import DeadLetter


@dataclass
class PublishStats:
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


class UpdatePublisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        partitions: int,
        batch_size: int = 500,
        linger_s: float = 0.02,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.partitions = partitions
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.stats = PublishStats()
        self._buffers: dict[int, list[Update]] = {}
        self._oldest: dict[int, float] = {}
        self._producer: Any = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._sending: dict[int, asyncio.Lock] = {}
        self._closing = False

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            linger_ms=5,
            acks="all",
            max_request_size=16 * 1024 * 1024,
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

    async def publish(self, updates: Iterable[Update]) -> None:
        now = time.monotonic()
        for update in updates:
            targets = (
                (partition_for(update.prefix, self.partitions),)
                if update.prefix
                else range(self.partitions)
            )
            for partition in targets:
                buffer = self._buffers.setdefault(partition, [])
                if not buffer:
                    self._oldest[partition] = now
                buffer.append(update)
                if len(buffer) >= self.batch_size:
                    await self._send(partition)
            self.stats.updates += 1

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.stats.dead_letters[letter.code] = self.stats.dead_letters.get(letter.code, 0) + 1
        await self._producer.send_and_wait(self.dlq_topic, letter.encode())

    async def _send(self, partition: int) -> None:
        # One send per partition at a time: ``send`` waits while the partition's previous
        # batch is in flight, and a batch popped after this one must not overtake it.
        async with self._sending.setdefault(partition, asyncio.Lock()):
            batch = self._buffers.pop(partition, [])
            self._oldest.pop(partition, None)
            if not batch:
                return
            future = await self._producer.send(
                self.topic, codec.encode_batch(batch), partition=partition
            )
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
            self.stats.records += 1

    async def _linger(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.linger_s / 2)
            now = time.monotonic()
            for partition, since in list(self._oldest.items()):
                if now - since >= self.linger_s:
                    await self._send(partition)

    async def flush(self) -> None:
        for partition in list(self._buffers):
            await self._send(partition)
        if self._pending:
            await asyncio.gather(*list(self._pending))
        await self._producer.flush()

    async def close(self) -> None:
        if self._timer is not None:
            # Let the linger task finish rather than cancel it: cancelled inside a send
            # that waits (backpressure), it would drop the batch it had taken.
            self._closing = True
            await self._timer
        if self._producer is not None:
            await self.flush()
            await self._producer.stop()
