"""Usage counting against PostgreSQL: batched upserts, gauges at the day's peak, updates
of a tenant's sessions from the session-stats windows, counts kept over a failed flush."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bgp_orchestrator.storage.database import Database
from bgp_orchestrator.usage import recorder
from bgp_orchestrator.usage.recorder import UsageRecorder
from bgp_orchestrator.usage.sessions import SessionUsage

pytestmark = pytest.mark.integration


async def _tenant(db: Database, slug: str, peer: str | None = None) -> int:
    async with db.connection() as conn:
        tenant_id: int = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", slug
        )
        if peer is not None:
            await conn.execute(
                "INSERT INTO autonomous_systems (tenant_id, asn) VALUES ($1, 64500)", tenant_id
            )
            await conn.execute(
                "INSERT INTO peering_sessions (tenant_id, local_asn, peer_asn, peer_address, "
                "interconnect) VALUES ($1, 64500, 64501, $2, 'pni')",
                tenant_id,
                peer,
            )
    return tenant_id


async def _today(db: Database, tenant_id: int) -> dict[str, int]:
    today = datetime.now(UTC).date()
    async with db.connection() as conn:
        return await recorder.totals(conn, tenant_id, today, today)


async def test_flushes_add_up_and_the_inventory_is_the_days_peak(db: Database, clean: None) -> None:
    acme = await _tenant(db, "acme", "192.0.2.1")
    usage = UsageRecorder(db, snapshot=True)
    for _ in range(3):
        usage.add(acme, "api_calls")
    usage.add(999_999, "api_calls")  # a tenant deleted meanwhile: dropped, no error
    await usage.flush()
    usage.add(acme, "api_calls", 4)
    await usage.flush()
    counted = await _today(db, acme)
    assert counted["api_calls"] == 7
    assert counted["sessions_monitored"] == 1 and counted["prefixes_monitored"] == 0
    async with db.connection() as conn:
        await conn.execute("DELETE FROM peering_sessions")
    await usage.flush()
    assert (await _today(db, acme))["sessions_monitored"] == 1  # the day's peak stays


async def test_a_failed_flush_keeps_its_counts(db: Database, clean: None) -> None:
    acme = await _tenant(db, "acme")
    usage = UsageRecorder(Database("postgresql://nobody@127.0.0.1:1/none"))
    usage.add(acme, "api_calls", 5)
    with pytest.raises(Exception):  # noqa: B017 - whatever the refusal, counts must stay
        await usage.flush()
    assert usage.pending == 1
    usage.db = db
    await usage.flush()
    assert (await _today(db, acme))["api_calls"] == 5


async def test_window_updates_count_for_the_tenant_owning_the_session(
    db: Database, clean: None
) -> None:
    acme = await _tenant(db, "acme", "192.0.2.1")
    other = await _tenant(db, "other")
    usage = SessionUsage(db)
    await usage.refresh()
    usage.record([{"session_id": "exabgp|192.0.2.1", "announcements": 40, "withdrawals": 2}])
    usage.record([{"session_id": "rrc00|203.0.113.7", "announcements": 9, "withdrawals": 0}])
    await usage.recorder.flush()
    assert (await _today(db, acme))["updates_processed"] == 42
    assert (await _today(db, other))["updates_processed"] == 0
