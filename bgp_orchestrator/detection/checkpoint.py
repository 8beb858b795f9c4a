"""Detector state checkpoints, so a restarted detector loses no stateful alert.

Per partition, the state (MOAS origins, visibility, per-upstream visibility, the
route-leak pairs that are the leak baseline) is
saved together with the offset it reflects, and only once every conflict of the records before that
offset is stored: a checkpoint is never ahead of stored work. A detector that
takes over a partition loads the snapshot and seeks back to that offset: the
records after it are replayed, rebuilding the state exactly; the conflicts
they raise again are idempotent upserts.

Checkpoints are *fenced*: the owner of a partition claims it (a token of its
own) before loading, and a save succeeds only while the claim is still its
own, so a stale owner that lost the partition in a rebalance cannot overwrite
the checkpoint of the new one.

A checkpoint also carries the fingerprint of the last record it reflects
(:mod:`bgp_orchestrator.stream.probe`), so that it is never applied to a
different log that happens to have grown past its offset.

The state is packed in slices (``dump_state``), so that no single call holds
the interpreter for long: run it in a thread and the event loop keeps turning.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack  # type: ignore[import-untyped]

from bgp_orchestrator.detection.state import (
    DetectorState,
    LeakPair,
    UpstreamVisibility,
    Visibility,
)
from bgp_orchestrator.errors import BgpoError, ServiceUnavailable
from bgp_orchestrator.stream.probe import Fingerprint

FORMAT = 4
SLICE = 20_000

# Save only while the claim is ours: KEYS[1] the partition's hash; ARGV token, offset, state.
_SAVE_IF_OWNER = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'offset', ARGV[2], 'state', ARGV[3])
return 1
"""


def dump_state(state: DetectorState, last: Fingerprint | None = None) -> bytes:
    """The state as bytes, packed ``SLICE`` prefixes at a time; ``last`` is the last
    record it reflects."""
    origins = list(state.origins.items())
    slices = [
        msgpack.packb(origins[i : i + SLICE], use_bin_type=True)
        for i in range(0, len(origins), SLICE)
    ]
    visibility = {p: [sorted(v.carrying), v.peak, v.alerted] for p, v in state.visibility.items()}
    record = list(last) if last is not None else None
    upstreams = {
        p: [v.peers, sorted(v.seen), sorted(v.alerted)]
        for p, v in state.upstream_visibility.items()
    }
    leaks = [
        [
            leaker,
            target,
            pair.first_seen,
            pair.last_seen,
            pair.window_start,
            sorted(pair.prefixes),
            sorted(pair.peers, key=str),
            sorted(pair.sources),
            pair.alerted,
            pair.alerted_new,
        ]
        for (leaker, target), pair in state.leak_pairs.items()
    ]
    leak_meta = [state.leak_watch_start, state.leak_vantage, state.leak_multi_vantage]
    data: bytes = msgpack.packb(
        [FORMAT, slices, visibility, record, upstreams, leaks, leak_meta], use_bin_type=True
    )
    return data


def load_state(data: bytes) -> tuple[DetectorState, Fingerprint | None]:
    """The state and the fingerprint of the last record it reflects."""
    version, *rest = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if version != FORMAT:
        raise ValueError(f"checkpoint format {version}, expected {FORMAT}")
    # Checkpoints written before per-upstream visibility existed lack that part.
    slices, visibility, record = rest[:3]
    upstreams = rest[3] if len(rest) > 3 else {}
    state = DetectorState()
    for blob in slices:
        part = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        state.origins.update({p: {int(o): float(t) for o, t in seen.items()} for p, seen in part})
    state.visibility = {
        p: Visibility(set(carrying), int(peak), bool(alerted))
        for p, (carrying, peak, alerted) in visibility.items()
    }
    for p, (peers, seen, alerted) in upstreams.items():
        vis = state.upstream_visibility[p] = UpstreamVisibility(
            {str(k): int(v) for k, v in peers.items()}, {}, set(seen), set(alerted)
        )
        for upstream in vis.peers.values():
            vis.counts[upstream] = vis.counts.get(upstream, 0) + 1
    # ... and those written before route-leak evidence existed lack the leak pairs.
    if len(rest) > 5:
        leaks, (watch_start, vantage, multi) = rest[4], rest[5]
        for leaker, target, first, last, start, prefixes, peers, sources, alerted, new in leaks:
            state.leak_pairs[(int(leaker), int(target))] = LeakPair(
                float(first),
                float(last),
                float(start),
                set(prefixes),
                set(peers),
                {int(a) for a in sources},
                bool(alerted),
                bool(new),
            )
            state.leak_targets.setdefault(int(leaker), set()).add(int(target))
        state.leak_watch_start = None if watch_start is None else float(watch_start)
        state.leak_vantage, state.leak_multi_vantage = vantage, bool(multi)
    return state, Fingerprint(*record) if record is not None else None


class StaleOwner(BgpoError):
    """Another worker claimed the partition since: this one must not save its checkpoint."""


class CheckpointStore(Protocol):
    async def claim(self, partition: int, token: str) -> None: ...

    async def save(self, partition: int, offset: int, state: bytes, token: str) -> None: ...

    async def load(self, partition: int) -> tuple[int, bytes] | None: ...


class RedisCheckpoints:
    """Checkpoints in Redis: one hash per partition of a consumer group (owner, offset, state)."""

    def __init__(self, client: Any, group: str, topic: str) -> None:
        self.client = client
        self.prefix = f"bgpo:checkpoint:{group}:{topic}"

    def _key(self, partition: int) -> str:
        return f"{self.prefix}:{partition}"

    async def claim(self, partition: int, token: str) -> None:
        await self._call(self.client.hset, self._key(partition), "owner", token)

    async def save(self, partition: int, offset: int, state: bytes, token: str) -> None:
        saved = await self._call(
            self.client.eval, _SAVE_IF_OWNER, 1, self._key(partition), token, offset, state
        )
        if not saved:
            raise StaleOwner(
                "checkpoint-fenced",
                f"partition {partition} was claimed by another worker; checkpoint not saved",
            )

    async def load(self, partition: int) -> tuple[int, bytes] | None:
        data = await self._call(self.client.hgetall, self._key(partition))
        if not data or b"offset" not in data or b"state" not in data:
            return None
        return int(data[b"offset"]), bytes(data[b"state"])

    async def _call(self, method: Any, *args: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            return await method(*args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise ServiceUnavailable(
                "redis-unavailable", f"Redis does not answer ({type(exc).__name__}: {exc})"
            ) from exc


class MemoryCheckpoints:
    """In-process checkpoints (tests, single-process runs), fenced like Redis'."""

    def __init__(self) -> None:
        self.data: dict[int, tuple[int, bytes]] = {}
        self.owners: dict[int, str] = {}

    async def claim(self, partition: int, token: str) -> None:
        self.owners[partition] = token

    async def save(self, partition: int, offset: int, state: bytes, token: str) -> None:
        if self.owners.get(partition, token) != token:
            raise StaleOwner("checkpoint-fenced", f"partition {partition} has another owner")
        self.owners[partition] = token
        self.data[partition] = (offset, state)

    async def load(self, partition: int) -> tuple[int, bytes] | None:
        return self.data.get(partition)
