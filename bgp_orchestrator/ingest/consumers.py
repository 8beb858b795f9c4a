"""The Kafka clients of a consumer of the update stream (detectors, session stats).

Both read ``bgp.updates`` in their own group, commit by hand after their work is
stored, start from the earliest offset when their group is new, and need a
producer for the dead-letter topic.
"""

from __future__ import annotations

from typing import Any

#: Largest fetch per partition: a msgpack batch of updates can be several MiB.
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024


def update_stream_clients(
    bootstrap: str, group: str, client_id: str, **consumer_options: Any
) -> tuple[Any, Any]:
    """An (unstarted) ``AIOKafkaConsumer`` of the update stream and a producer for
    dead letters; ``consumer_options`` override the consumer's settings."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
        **consumer_options,
    }
    return AIOKafkaConsumer(**options), AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
