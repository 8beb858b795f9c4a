"""The service helpers: capped backoff with jitter, and a sleep that ends on stop."""

import asyncio
import time

from bgp_orchestrator.service import Backoff, sleep_or_stop


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(initial_s=1.0, maximum_s=8.0)
    delays = [b.delay() for _ in range(6)]
    for n, d in enumerate(delays):
        ceiling = min(8.0, 2.0**n)
        assert ceiling / 2 <= d <= ceiling
    b.reset()
    assert b.delay() <= 1.0


async def test_sleep_or_stop_returns_early_when_stopped() -> None:
    stop = asyncio.Event()
    assert await sleep_or_stop(stop, 0.01) is False
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    assert await sleep_or_stop(stop, 10) is True
    assert time.monotonic() - started < 1
