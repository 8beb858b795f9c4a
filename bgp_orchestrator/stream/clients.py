"""The Kafka clients of a consumer of the update stream (detectors, session stats).

Both read ``bgp.updates`` in their own group, commit by hand after their work is
stored, start from the earliest offset when their group is new, and need a
producer for the dead-letter topic.
"""

from __future__ import annotations

from typing import Any

#: Largest fetch per partition: a msgpack batch of updates can be several MiB.
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024


def update_stream_consumer(
    bootstrap: str, group: str, client_id: str, **consumer_options: Any
) -> Any:
    """An (unstarted) ``AIOKafkaConsumer`` of the update stream; ``consumer_options``
    override its settings."""
    from aiokafka import AIOKafkaConsumer

    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
        **consumer_options,
    }
    return AIOKafkaConsumer(**options)


def dead_letter_producer(bootstrap: str) -> Any:
    """An (unstarted) producer for the dead-letter topic: every send acknowledged by all
    in-sync replicas before the records it describes are committed."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")


def acknowledged_producer(bootstrap: str) -> Any:
    """An (unstarted) producer whose sends are acknowledged by all in-sync replicas:
    for records a consumer's commit depends on (e.g. the session stats' partial
    windows)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
