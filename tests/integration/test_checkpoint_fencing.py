"""Redis checkpoints are fenced: after a new owner claims a partition, the old one's save
is refused (the Lua script runs in Redis, so this needs a real one)."""

import uuid

import pytest

from bgp_orchestrator.detection.checkpoint import RedisCheckpoints, StaleOwner
from bgp_orchestrator.errors import ServiceUnavailable

pytestmark = pytest.mark.integration


async def test_a_stale_owner_is_fenced_in_redis(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    store = RedisCheckpoints(client, f"g-{uuid.uuid4().hex[:6]}", "t")
    try:
        assert await store.load(0) is None
        await store.claim(0, "old")
        await store.save(0, 10, b"\x00old", "old")
        await store.claim(0, "new")
        with pytest.raises(StaleOwner):
            await store.save(0, 12, b"stale", "old")
        assert await store.load(0) == (10, b"\x00old")
        await store.save(0, 11, b"new", "new")
        assert await store.load(0) == (11, b"new")
    finally:
        await client.aclose()


async def test_redis_away_is_service_unavailable() -> None:
    import redis.asyncio as aioredis

    from tests.conftest import free_port

    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    try:
        with pytest.raises(ServiceUnavailable, match="Redis does not answer"):
            await RedisCheckpoints(client, "g", "t").load(0)
    finally:
        await client.aclose()
