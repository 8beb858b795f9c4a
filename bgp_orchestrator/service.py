"""The one contract of every long-running worker: `run(stop)`, `health()`, `stats()`, `aclose()`.

The detection worker, the session stats, the alert dispatcher and the job
scheduler all have this shape, so one generic Serve wrapper
(``deployments/hosting.py``) runs any of them: it starts ``run`` as a
background task, answers Serve's ``check_health`` from ``health()`` and stops
the service gracefully (``stop`` set, the task awaited, then ``aclose``).

Ray-free: services are plain asyncio objects, tested without Ray.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Service(Protocol):
    """A background worker with a lifecycle the host drives."""

    #: Names the worker in logs, metrics and ``bgpo status``.
    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; return cleanly then. Raising means the worker died."""
        ...

    def health(self) -> list[str]:
        """Problems an operator must know about now (empty: healthy). Never blocks."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters and state for ``stats()`` calls and metrics (JSON-serialisable)."""
        ...

    async def aclose(self) -> None:
        """Release clients and pools; called once, after ``run`` returned."""
        ...


@dataclass
class Backoff:
    """Capped exponential backoff with jitter, for retrying a dependency.

    ``delay()`` returns how long to wait before the next attempt and counts the
    attempt; ``reset()`` after a success.
    """

    initial_s: float = 0.2
    maximum_s: float = 10.0
    attempts: int = 0

    def delay(self) -> float:
        base: float = min(self.maximum_s, self.initial_s * 2.0**self.attempts)
        self.attempts += 1
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.attempts = 0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; True if stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
