"""An asyncpg pool that fails fast and says so when PostgreSQL is away.

The pool is created lazily and never connects at construction, so a replica
starts (and answers ``/healthz``) while PostgreSQL is down. Every connection
failure becomes :class:`ServiceUnavailable` (HTTP 503) within the configured
timeouts instead of a hang, and expires the pool's other connections so that
a restarted server is picked up on the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import asyncpg

from bgp_orchestrator.errors import ServiceUnavailable

if TYPE_CHECKING:
    from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)

# Errors that say "the server or the connection is gone", not "your query is wrong".
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


@dataclass(frozen=True)
class PoolOptions:
    min_size: int = 0
    max_size: int = 10
    connect_timeout_s: float = 3.0
    command_timeout_s: float = 10.0
    acquire_timeout_s: float = 3.0


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants ``postgresql://``; accept the SQLAlchemy spelling too."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class Database:
    """A lazily created asyncpg pool with fail-fast error mapping."""

    def __init__(self, dsn: str, options: PoolOptions | None = None) -> None:
        self._dsn = asyncpg_dsn(dsn)
        self._options = options or PoolOptions()
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    opts = self._options
                    # min_size=0: creating the pool opens no connection, so it
                    # cannot fail while PostgreSQL is down.
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=opts.min_size,
                        max_size=opts.max_size,
                        timeout=opts.connect_timeout_s,
                        command_timeout=opts.command_timeout_s,
                        max_inactive_connection_lifetime=60.0,
                    )
        return self._pool

    async def _unavailable(self, exc: BaseException) -> ServiceUnavailable:
        if self._pool is not None:
            # The server went away or restarted: drop every pooled connection
            # so the next request reconnects instead of failing again.
            await self._pool.expire_connections()
        reason = str(exc) or type(exc).__name__
        return ServiceUnavailable(
            "database-unavailable",
            f"PostgreSQL is not answering ({type(exc).__name__}: {reason}); retry shortly",
            details={"retry_after_s": 2},
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; connection-level failures become ServiceUnavailable."""
        pool = await self._get_pool()
        try:
            async with pool.acquire(timeout=self._options.acquire_timeout_s) as conn:
                yield cast(asyncpg.Connection, conn)
        except asyncpg.exceptions.UndefinedTableError as exc:
            raise ServiceUnavailable(
                "database-not-migrated",
                f"the database schema is missing ({exc}); run `bgpo migrate`",
            ) from exc
        except _CONNECTION_ERRORS as exc:
            raise await self._unavailable(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self, timeout_s: float | None = None) -> float:
        """Round-trip a trivial query; returns its latency in seconds."""
        started = time.perf_counter()
        timeout = timeout_s or self._options.acquire_timeout_s
        try:
            async with asyncio.timeout(timeout), self.connection() as conn:
                await conn.fetchval("SELECT 1")
        except TimeoutError as exc:
            raise await self._unavailable(exc) from exc
        return time.perf_counter() - started

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except _CONNECTION_ERRORS:
                pool.terminate()


def open_database(settings: Settings) -> Database:
    """The pool of the configured PostgreSQL, or of the embedded one `bgpo up` runs.

    The one way every process (API, workers, jobs, CLI commands) opens the
    database: nothing connects until the first query, and the pool's sizes and
    timeouts come from the settings.
    """
    from bgp_orchestrator.local.services import endpoints

    return Database(
        endpoints(settings).database_url,
        PoolOptions(
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            connect_timeout_s=settings.db_connect_timeout_s,
            command_timeout_s=settings.db_command_timeout_s,
            acquire_timeout_s=settings.db_acquire_timeout_s,
        ),
    )
