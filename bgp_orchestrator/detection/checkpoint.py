"""Detector state checkpoints, so a restarted detector loses no stateful alert.

Per partition, the state (MOAS origins, visibility) is saved together with the
offset it reflects. A detector that takes over a partition loads the snapshot
and seeks back to that offset: the records after it are replayed, rebuilding
the state exactly; the conflicts they raise again are idempotent upserts.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack  # type: ignore[import-untyped]

from bgp_orchestrator.detection.state import DetectorState, Visibility

FORMAT = 1


def dump_state(state: DetectorState) -> bytes:
    data: bytes = msgpack.packb(
        [
            FORMAT,
            state.origins,
            {p: [sorted(v.carrying), v.peak, v.alerted] for p, v in state.visibility.items()},
        ],
        use_bin_type=True,
    )
    return data


def load_state(data: bytes) -> DetectorState:
    version, origins, visibility = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if version != FORMAT:
        raise ValueError(f"checkpoint format {version}")
    state = DetectorState()
    state.origins = {p: {int(o): float(t) for o, t in seen.items()} for p, seen in origins.items()}
    state.visibility = {
        p: Visibility(set(carrying), int(peak), bool(alerted))
        for p, (carrying, peak, alerted) in visibility.items()
    }
    return state


class CheckpointStore(Protocol):
    async def save(self, partition: int, offset: int, state: bytes) -> None: ...

    async def load(self, partition: int) -> tuple[int, bytes] | None: ...


class RedisCheckpoints:
    """Checkpoints in Redis: one hash per partition of a consumer group."""

    def __init__(self, client: Any, group: str, topic: str) -> None:
        self.client = client
        self.prefix = f"bgpo:checkpoint:{group}:{topic}"

    async def save(self, partition: int, offset: int, state: bytes) -> None:
        await self.client.hset(
            f"{self.prefix}:{partition}", mapping={"offset": offset, "state": state}
        )

    async def load(self, partition: int) -> tuple[int, bytes] | None:
        data = await self.client.hgetall(f"{self.prefix}:{partition}")
        if not data:
            return None
        return int(data[b"offset"]), bytes(data[b"state"])


class MemoryCheckpoints:
    """In-process checkpoints (tests, single-process runs)."""

    def __init__(self) -> None:
        self.data: dict[int, tuple[int, bytes]] = {}

    async def save(self, partition: int, offset: int, state: bytes) -> None:
        self.data[partition] = (offset, state)

    async def load(self, partition: int) -> tuple[int, bytes] | None:
        return self.data.get(partition)
