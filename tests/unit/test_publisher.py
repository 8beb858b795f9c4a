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


class FlakyProducer:
    """Acknowledges records after a turn of the event loop, except that the next
    ``fail`` sends fail (with ``error``); dead letters (no partition) alike."""

    def __init__(self) -> None:
        self.records: list[tuple[int, list[str]]] = []
        self.letters: list[bytes] = []
        self.fail = 0
        self.error: Exception = aiokafka.errors.KafkaConnectionError("broker gone")
        self.sends = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes, partition: int | None = None
    ) -> asyncio.Future[None]:
        self.sends += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failing = self.fail > 0
        self.fail -= 1

        def settle() -> None:
            if failing:
                future.set_exception(self.error)
            elif partition is None:
                self.letters.append(value)
                future.set_result(None)
            else:
                self.records.append((partition, [u.prefix for u in codec.decode_batch(value)]))
                future.set_result(None)

        asyncio.get_running_loop().call_soon(settle)
        return future


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> FlakyProducer:
    fake = FlakyProducer()
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", lambda **kwargs: fake)
    return fake


def _publisher(**options: Any) -> UpdatePublisher:
    defaults: dict[str, Any] = {"retry_backoff_s": 0.001, "linger_s": 0.002}
    return UpdatePublisher("kafka:9092", "t", "t.dlq", 2, **{**defaults, **options})


async def test_a_failed_batch_is_sent_again_and_counted_once(flaky: FlakyProducer) -> None:
    publisher = _publisher(retries=2)
    await publisher.start()
    flaky.fail = 2  # the first send and its first retry fail
    await publisher.publish([_update("10.0.0.0/24")], position=1)
    await publisher.close()
    assert [prefixes for _, prefixes in flaky.records] == [["10.0.0.0/24"]]
    assert publisher.stats.updates == 1 and publisher.stats.records == 1
    assert publisher.acknowledged == 1 and flaky.sends == 3


async def test_a_batch_that_keeps_failing_fails_the_publisher_and_is_not_counted(
    flaky: FlakyProducer,
) -> None:
    from bgp_orchestrator.ingest.publisher import PublishFailed

    publisher = _publisher(retries=1)
    await publisher.start()
    await publisher.publish([_update("10.0.0.0/24")], position=1)
    await publisher.flush()
    flaky.fail = 100
    await publisher.publish([_update("10.0.1.0/24")], position=2)
    with pytest.raises(PublishFailed) as info:
        await publisher.flush()
    error = info.value
    assert error.code == "kafka-publish-failed"
    assert "kafka:9092" in error.message and "partition" in error.message
    assert error.details["topic"] == "t" and error.details["attempts"] == 2
    assert publisher.stats.updates == 1 and publisher.acknowledged == 1
    with pytest.raises(PublishFailed):  # and every later call says so
        await publisher.publish([_update("10.0.2.0/24")], position=3)
    await publisher.close()  # already reported: close does not raise it again


async def test_a_refused_batch_is_not_retried(flaky: FlakyProducer) -> None:
    from bgp_orchestrator.ingest.publisher import PublishFailed

    publisher = _publisher(retries=5)
    await publisher.start()
    flaky.fail = 1
    flaky.error = aiokafka.errors.MessageSizeTooLargeError()
    await publisher.publish([_update("10.0.0.0/24")])
    with pytest.raises(PublishFailed) as info:
        await publisher.close()  # close flushes, and raises what was not reported yet
    assert info.value.details["attempts"] == 1 and flaky.sends == 1


async def test_a_failure_in_the_linger_task_surfaces_at_the_next_publish(
    flaky: FlakyProducer,
) -> None:
    from bgp_orchestrator.ingest.publisher import PublishFailed

    publisher = _publisher(retries=0)
    await publisher.start()
    flaky.fail = 1
    await publisher.publish([_update("10.0.0.0/24")])  # below batch_size: the linger sends it
    for _ in range(200):
        await asyncio.sleep(0.005)
        if flaky.sends:
            break
    await asyncio.sleep(0.01)
    with pytest.raises(PublishFailed):
        await publisher.publish([_update("10.0.1.0/24")])
    assert publisher.stats.updates == 0
    await publisher.close()


async def test_dead_letters_are_checked_and_counted_when_acknowledged(
    flaky: FlakyProducer,
) -> None:
    from bgp_orchestrator.ingest.deadletter import DeadLetter

    publisher = _publisher(retries=2)
    await publisher.start()
    flaky.fail = 1
    await publisher.dead_letter(DeadLetter("malformed-json", "not JSON", "test", "f:1", "{"))
    await publisher.dead_letter(DeadLetter("invalid-prefix", "bad", "test", "f:2", "x"))
    publisher.mark(2)
    await publisher.close()
    assert sorted(DeadLetter.decode(v).position for v in flaky.letters) == ["f:1", "f:2"]
    assert publisher.stats.dead_letters == {"malformed-json": 1, "invalid-prefix": 1}
    assert publisher.acknowledged == 2


async def test_positions_are_acknowledged_only_when_everything_before_is(
    producer: BlockingProducer,
) -> None:
    publisher = UpdatePublisher("kafka", "t", "t.dlq", 2, batch_size=1, linger_s=0.002)
    await publisher.start()
    producer.block_next = True
    await publisher.publish([_update("10.0.0.0/24"), _update("10.1.0.0/24")], position=10)
    await asyncio.wait_for(producer.waiting.wait(), 2)  # one partition's record is held
    await publisher.publish([_update("10.0.1.0/24")], position=20)
    for _ in range(5):
        await asyncio.sleep(0.005)
    assert publisher.acknowledged is None and publisher.stats.updates == 0
    producer.release.set()
    await publisher.flush()
    assert publisher.acknowledged == 20 and publisher.stats.updates == 3
    await publisher.close()


async def test_session_events_go_to_every_partition_in_order(flaky: FlakyProducer) -> None:
    publisher = _publisher()
    await publisher.start()
    down = Update(Kind.PEER_DOWN, 2.0, "192.0.2.1", 64500, collector="test")
    await publisher.publish([_update("10.0.0.0/24"), down, _update("10.0.0.0/24")])
    await publisher.close()
    per_partition = {p: prefixes for p, prefixes in flaky.records}
    assert len(flaky.records) == 2 and publisher.stats.updates == 3
    assert sorted(per_partition.values(), key=len) == [[""], ["10.0.0.0/24", "", "10.0.0.0/24"]]


async def test_eager_sends_without_waiting_for_a_batch_or_the_linger(
    flaky: FlakyProducer,
) -> None:
    publisher = _publisher(linger_s=60, eager=True)
    await publisher.start()
    await publisher.publish([_update("10.0.0.0/24")])
    for _ in range(10):
        await asyncio.sleep(0)
    assert flaky.records == [(publisher._partition_of("10.0.0.0/24"), ["10.0.0.0/24"])]
    await publisher.close()


async def test_records_never_exceed_the_largest_record(flaky: FlakyProducer) -> None:
    publisher = _publisher(batch_size=10, max_record_updates=25)
    await publisher.start()
    await publisher.publish([_update("10.0.0.0/24")] * 60)
    await publisher.close()
    sizes = [len(prefixes) for _, prefixes in flaky.records]
    assert sum(sizes) == 60 and max(sizes) <= 25


def test_publish_failed_survives_pickling() -> None:
    import pickle

    from bgp_orchestrator.ingest.publisher import PublishFailed

    exc = PublishFailed("kafka-publish-failed", "m", "partition", 3, {"topic": "t"})
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is PublishFailed
    assert (back.code, back.value, back.details) == ("kafka-publish-failed", 3, {"topic": "t"})


async def test_wait_below_waits_until_the_broker_took_enough(producer: BlockingProducer) -> None:
    publisher = UpdatePublisher("kafka", "t", "t.dlq", 1, batch_size=1, linger_s=0.002)
    await publisher.start()
    producer.block_next = True
    await publisher.publish([_update("10.0.0.0/24"), _update("10.0.1.0/24")])
    await asyncio.wait_for(producer.waiting.wait(), 2)
    await publisher.wait_below(2)  # two waiting: not above the limit
    waiting = asyncio.create_task(publisher.wait_below(0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    producer.release.set()
    await asyncio.wait_for(waiting, 2)
    assert publisher.unacknowledged == 0
    await publisher.close()
