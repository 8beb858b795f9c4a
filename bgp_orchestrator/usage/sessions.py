"""Updates processed per tenant, from the session-stats worker's closed windows.

A window row counts one BGP session's announcements and withdrawals
(``collector|peer address``). The updates of a session whose peer address is one
of a tenant's peering sessions count for that tenant. The address -> tenants
map is read from ``peering_sessions`` at each flush (one small query every
``interval_s``), so :meth:`SessionUsage.record` stays a dict lookup per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from bgp_orchestrator.storage.database import Database
from bgp_orchestrator.usage.recorder import UsageRecorder, tenants_of_sessions

log = logging.getLogger(__name__)


class SessionUsage:
    """Feeds ``updates_processed`` of a :class:`UsageRecorder` from window rows."""

    def __init__(self, db: Database, interval_s: float = 30.0, owns_db: bool = False) -> None:
        self.db = db
        self.recorder = UsageRecorder(db, interval_s)
        self._owns_db = owns_db
        self._tenants: dict[str, list[int]] = {}
        self._unmatched: defaultdict[str, int] = defaultdict(int)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, rows: Iterable[Mapping[str, Any]]) -> None:
        counts: defaultdict[str, int] = defaultdict(int)
        for row in rows:
            n = int(row.get("announcements", 0)) + int(row.get("withdrawals", 0))
            if n:
                address = str(row.get("session_id", "")).rpartition("|")[2]
                counts[address] += n
        matched = {a: c for a, c in counts.items() if a in self._tenants}
        for address, count in counts.items():
            if address not in self._tenants:
                # Kept until the next map refresh: a session added a moment ago counts.
                self._unmatched[address] += count
        self.recorder.add_many(tenants_of_sessions(self._tenants, matched), "updates_processed")

    async def refresh(self) -> None:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT host(peer_address) AS address, array_agg(DISTINCT tenant_id) AS tenants "
                "FROM peering_sessions GROUP BY 1"
            )
        self._tenants = {r["address"]: list(r["tenants"]) for r in rows}
        late, self._unmatched = self._unmatched, defaultdict(int)
        self.recorder.add_many(tenants_of_sessions(self._tenants, late), "updates_processed")

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.refresh()
                await self.recorder.flush()
            except Exception:
                log.warning("session usage flush failed; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.recorder.interval_s)

    def start(self) -> None:
        """Start the flush task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="usage")

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.refresh()
            await self.recorder.flush()
        if self._owns_db:
            await self.db.close()
