"""UpdatePublisher against a producer that applies backpressure (no Kafka needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.ingest.publisher import UpdatePublisher


class BlockingProducer:
    """Records what it is sent; the first send after ``block_next`` waits for ``release``
    (as aiokafka's does while the partition's previous batch is still in flight), later
    ones go straight through."""

    def __init__(self) -> None:
        self.records: list[tuple[int, list[str]]] = []
        self.block_next = False
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future[None]:
        if self.block_next:
            self.block_next = False
            self.waiting.set()
            await self.release.wait()
        self.records.append((partition, [u.prefix for u in codec.decode_batch(value)]))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _update(prefix: str) -> Update:
    return Update(Kind.ANNOUNCE, 1.0, "192.0.2.1", 64500, prefix, (64500,), (), "", "test", "test")


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> BlockingProducer:
    fake = BlockingProducer()

    def make(**kwargs: Any) -> BlockingProducer:
        return fake

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", make)
    return fake


async def test_close_keeps_the_batch_the_linger_task_is_sending(
    producer: BlockingProducer,
) -> None:
    publisher = UpdatePublisher("kafka", "t", "t.dlq", 1, batch_size=100, linger_s=0.002)
    await publisher.start()
    producer.block_next = True
    await publisher.publish([_update("10.0.0.0/24")])
    await asyncio.wait_for(producer.waiting.wait(), 2)  # the linger task is in send()
    closing = asyncio.create_task(publisher.close())
    await asyncio.sleep(0.02)
    producer.release.set()
    await asyncio.wait_for(closing, 2)
    assert producer.records == [(0, ["10.0.0.0/24"])]


async def test_a_partition_keeps_its_order_when_a_send_waits(producer: BlockingProducer) -> None:
    publisher = UpdatePublisher("kafka", "t", "t.dlq", 1, batch_size=2, linger_s=0.002)
    await publisher.start()
    producer.block_next = True
    await publisher.publish([_update("10.0.0.0/24")])
    await asyncio.wait_for(producer.waiting.wait(), 2)  # the linger task holds the first
    publishing = asyncio.create_task(
        publisher.publish([_update("10.0.1.0/24"), _update("10.0.2.0/24")])
    )
    await asyncio.sleep(0.02)
    producer.release.set()
    await asyncio.wait_for(publishing, 2)
    await publisher.close()
    assert producer.records == [(0, ["10.0.0.0/24"]), (0, ["10.0.1.0/24", "10.0.2.0/24"])]
