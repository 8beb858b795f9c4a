"""Dead letters of a stream consumer: buffered while a batch is processed, sent before commit.

A record that cannot be processed is not lost: it goes to the dead-letter
topic with its reason and position. The consumer adds letters while it
processes a batch and calls :meth:`DeadLetterSink.flush` in its store step;
only when every send is acknowledged may the offsets of the batch be
committed. A failed send keeps the letters for the next attempt and raises
:class:`~bgp_orchestrator.errors.ServiceUnavailable`, which the consume loop
retries with backoff.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.ingest.deadletter import DeadLetter
from bgp_orchestrator.stream.clients import dead_letter_producer


class DeadLetterSink:
    def __init__(self, bootstrap: str, topic: str, producer: Any = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer = producer
        self._pending: list[DeadLetter] = []
        self.sent: Counter[str] = Counter()

    async def start(self) -> None:
        if self._producer is None:
            self._producer = dead_letter_producer(self.bootstrap)
        try:
            await self._producer.start()
        except Exception as exc:
            raise ServiceUnavailable(
                "kafka-unavailable",
                f"cannot connect the dead-letter producer to Kafka at {self.bootstrap}: {exc}",
            ) from exc

    def add(self, letter: DeadLetter) -> None:
        self._pending.append(letter)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Send every pending letter and wait for the broker's acknowledgements."""
        if not self._pending:
            return
        letters, self._pending = self._pending, []
        try:
            futures = [await self._producer.send(self.topic, d.encode()) for d in letters]
            await asyncio.gather(*futures)
        except Exception as exc:
            # Keep them all: a letter sent twice is harmless, a lost one is not.
            self._pending = letters + self._pending
            raise ServiceUnavailable(
                "dead-letter-topic-unavailable",
                f"cannot write {len(letters)} dead letters to {self.topic} "
                f"({type(exc).__name__}: {exc})",
            ) from exc
        for letter in letters:
            self.sent[letter.code] += 1

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
