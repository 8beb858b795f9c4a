"""Which log a checkpoint describes: a record's fingerprint, and a probe that reads one back.

A checkpoint's offset means nothing on its own: a broker that lost its log
(the embedded memory-only one after a restart, or a topic deleted and
recreated) numbers the new records from 0 again, and once the new log has
grown past the old offset, seeking there would skip the new records and apply
state built from a log that no longer exists. So a checkpoint carries the
fingerprint (offset, timestamp, CRC of the value) of the last record it
reflects, and whoever restores it reads that record back first.
"""

from __future__ import annotations

import zlib
from typing import Any, NamedTuple


class Fingerprint(NamedTuple):
    offset: int
    timestamp: int
    crc: int

    @classmethod
    def of(cls, record: Any) -> Fingerprint:
        return cls(record.offset, record.timestamp, zlib.crc32(record.value or b""))


class LogProbe:
    """Reads single records by offset, outside any consumer group."""

    def __init__(self, bootstrap: str, topic: str, timeout_ms: int = 3000) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_ms = timeout_ms
        self._consumer: Any = None

    async def fingerprint(self, partition: int, offset: int) -> Fingerprint | None:
        """The fingerprint of the record at ``offset``, None if the log has none there."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await consumer.start()
            self._consumer = consumer
        tp = TopicPartition(self.topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, offset)
        batch = await self._consumer.getmany(tp, timeout_ms=self.timeout_ms, max_records=1)
        for record in batch.get(tp, []):
            if record.offset == offset:
                return Fingerprint.of(record)
        return None

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
