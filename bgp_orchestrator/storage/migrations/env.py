"""Alembic environment: runs migrations over asyncpg (no second driver needed)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bgp_orchestrator.storage.migrate import sqlalchemy_url

config = context.config


def _dsn() -> str:
    dsn = config.attributes.get("dsn")
    if not dsn:
        raise RuntimeError("no database URL given to the migrations (use `bgpo migrate`)")
    return str(dsn)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(sqlalchemy_url(_dsn()))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=sqlalchemy_url(_dsn()), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
