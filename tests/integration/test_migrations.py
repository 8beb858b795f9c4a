"""Alembic migrations apply, roll back and apply again on a real PostgreSQL."""

import asyncio

import asyncpg

from bgp_orchestrator.storage import migrate

TABLES = {
    "tenants",
    "autonomous_systems",
    "neighbor_asns",
    "peering_sessions",
    "prefixes",
    "peer_prefix_counts",
}


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()
        return {r["tablename"] for r in rows}

    return asyncio.run(run())


def test_upgrade_downgrade_upgrade(fresh_database: str) -> None:
    assert migrate.current_revision(fresh_database) is None
    migrate.upgrade(fresh_database)
    assert migrate.current_revision(fresh_database) == migrate.head_revision()
    assert _tables(fresh_database) >= TABLES

    migrate.downgrade(fresh_database, "base")
    assert migrate.current_revision(fresh_database) is None
    assert not (_tables(fresh_database) & TABLES)

    migrate.upgrade(fresh_database)
    assert _tables(fresh_database) >= TABLES


def test_upgrade_is_idempotent(database_url: str) -> None:
    before = migrate.current_revision(database_url)
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == before == migrate.head_revision()
