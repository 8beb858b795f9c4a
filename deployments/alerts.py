"""Alert fan-out on Ray Serve: one replica running the webhook dispatcher."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.api.app import database_for
from bgp_orchestrator.settings import Settings


@serve.deployment(name="AlertDispatcher")
class Alerts:
    def __init__(self) -> None:
        self._db = database_for(Settings())
        self.dispatcher = AlertDispatcher(self._db)
        self._stop = asyncio.Event()
        self._task = asyncio.get_event_loop().create_task(self.dispatcher.run(self._stop))

    async def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError(f"the alert dispatcher stopped: {self._task.exception()!r}")

    async def stats(self) -> dict[str, Any]:
        return self.dispatcher.stats.__dict__.copy()

    async def __del__(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, timeout=10)
        await self._db.close()


app = Alerts.bind()  # type: ignore[attr-defined]
