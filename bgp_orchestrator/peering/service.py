"""Peering inventory use cases: each write is one transaction, locked per tenant.

The checks in :mod:`checks` give the explanations; the database constraints
stay as the last line of defence, and their violations are translated here
so that a race between two writers is still a 409, never a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bgp_orchestrator.errors import ConfigConflict, InvalidInput, NotFound
from bgp_orchestrator.peering import checks
from bgp_orchestrator.peering import repository as repo
from bgp_orchestrator.peering.repository import TenantTable, Where
from bgp_orchestrator.storage.database import Database

# Constraint name -> (code, message) for violations that slip past the checks.
_CONSTRAINTS = {
    "tenants_slug_key": ("tenant-exists", "a tenant with this slug already exists"),
    "autonomous_systems_asn_key": ("asn-registered-elsewhere", "this ASN is already registered"),
    "autonomous_systems_tenant_asn_key": ("asn-exists", "this ASN is already registered"),
    "neighbor_asns_tenant_asn_key": ("neighbor-exists", "this neighbour ASN already exists"),
    "peering_sessions_tenant_peer_address_key": (
        "peer-address-in-use",
        "this peer address is already used by another session",
    ),
    "peering_sessions_local_asn_fkey": (
        "local-asn-not-owned",
        "the local ASN is not one of this tenant's ASNs, or sessions still use it",
    ),
    "prefixes_tenant_prefix_key": ("prefix-exists", "this prefix is already registered"),
}
# A tenant deleted while another replica still had it cached.
_GONE_TENANT = ("tenant-gone", "the tenant no longer exists; it was deleted")


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        yield
    except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as exc:
        code, message = _CONSTRAINTS.get(
            exc.constraint_name or "",
            ("conflict", "the change conflicts with stored configuration"),
        )
        raise ConfigConflict(code, message, details={"constraint": exc.constraint_name}) from exc
    except asyncpg.CheckViolationError as exc:
        raise InvalidInput(
            "constraint-violated",
            f"the value breaks the rule {exc.constraint_name}",
            details={"constraint": exc.constraint_name},
        ) from exc


class PeeringService:
    """Reads and writes of one tenant's peering inventory."""

    def __init__(self, db: Database, tenant_id: int) -> None:
        self.db = db
        self.tenant_id = tenant_id

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.db.transaction() as conn, _translated():
            await repo.lock_tenant(conn, self.tenant_id)
            yield conn

    async def _get(self, table: TenantTable, object_id: int, kind: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            found = await table.get(conn, self.tenant_id, object_id)
        if found is None:
            raise NotFound(f"{kind}-not-found", f"no {kind} with id {object_id}", "id", object_id)
        return found

    async def _page(
        self, table: TenantTable, where: Where, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        async with self.db.connection() as conn:
            return await table.page(conn, self.tenant_id, where, limit, offset)

    async def _delete(self, table: TenantTable, object_id: int, kind: str) -> None:
        async with self._write() as conn:
            if not await table.delete(conn, self.tenant_id, object_id):
                raise NotFound(
                    f"{kind}-not-found", f"no {kind} with id {object_id}", "id", object_id
                )

    # --- autonomous systems ---------------------------------------------------

    async def create_asn(self, values: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            await checks.check_asn_unregistered(conn, self.tenant_id, values["asn"])
            return await repo.ASNS.insert(conn, self.tenant_id, values)

    async def get_asn(self, object_id: int) -> dict[str, Any]:
        return await self._get(repo.ASNS, object_id, "asn")

    async def list_asns(
        self, where: Where, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._page(repo.ASNS, where, limit, offset)

    async def update_asn(self, object_id: int, values: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            updated = await repo.ASNS.update(conn, self.tenant_id, object_id, values)
        if updated is None:
            raise NotFound("asn-not-found", f"no asn with id {object_id}", "id", object_id)
        return updated

    async def delete_asn(self, object_id: int) -> None:
        async with self._write() as conn:
            current = await repo.ASNS.get(conn, self.tenant_id, object_id, for_update=True)
            if current is None:
                raise NotFound("asn-not-found", f"no asn with id {object_id}", "id", object_id)
            await checks.check_asn_unused(conn, self.tenant_id, current["asn"])
            await repo.ASNS.delete(conn, self.tenant_id, object_id)

    # --- neighbour ASNs ----------------------------------------------------------

    async def create_neighbor(self, values: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            await checks.check_neighbor_unique(conn, self.tenant_id, values["asn"])
            return await repo.NEIGHBORS.insert(conn, self.tenant_id, values)

    async def get_neighbor(self, object_id: int) -> dict[str, Any]:
        return await self._get(repo.NEIGHBORS, object_id, "neighbor")

    async def list_neighbors(
        self, where: Where, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._page(repo.NEIGHBORS, where, limit, offset)

    async def update_neighbor(self, object_id: int, values: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            updated = await repo.NEIGHBORS.update(conn, self.tenant_id, object_id, values)
        if updated is None:
            raise NotFound(
                "neighbor-not-found", f"no neighbor with id {object_id}", "id", object_id
            )
        return updated

    async def delete_neighbor(self, object_id: int) -> None:
        await self._delete(repo.NEIGHBORS, object_id, "neighbor")

    # --- sessions ----------------------------------------------------------------------

    async def _check_session(
        self, conn: asyncpg.Connection, session: dict[str, Any], exclude_id: int | None
    ) -> None:
        checks.check_session_addresses(session)
        await checks.check_local_asn_owned(conn, self.tenant_id, session["local_asn"])
        await checks.check_session_unique(conn, self.tenant_id, session, exclude_id)
        await checks.check_max_prefixes(conn, session)

    async def create_session(self, values: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            await self._check_session(conn, values, None)
            return await repo.SESSIONS.insert(conn, self.tenant_id, values)

    async def get_session(self, object_id: int) -> dict[str, Any]:
        return await self._get(repo.SESSIONS, object_id, "session")

    async def list_sessions(
        self, where: Where, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._page(repo.SESSIONS, where, limit, offset)

    async def update_session(self, object_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            current = await repo.SESSIONS.get(conn, self.tenant_id, object_id, for_update=True)
            if current is None:
                raise NotFound(
                    "session-not-found", f"no session with id {object_id}", "id", object_id
                )
            merged = {**current, **changes}
            await self._check_session(conn, merged, object_id)
            updated = await repo.SESSIONS.update(conn, self.tenant_id, object_id, changes)
            assert updated is not None
            return updated

    async def delete_session(self, object_id: int) -> None:
        await self._delete(repo.SESSIONS, object_id, "session")

    # --- prefixes --------------------------------------------------------------------------

    async def create_prefix(self, values: dict[str, Any]) -> dict[str, Any]:
        checks.check_prefix_fields(values)
        async with self._write() as conn:
            await repo.lock_prefix(conn, values["prefix"])
            await checks.check_prefix_claims(conn, self.tenant_id, values, None)
            return await repo.PREFIXES.insert(conn, self.tenant_id, values)

    async def get_prefix(self, object_id: int) -> dict[str, Any]:
        return await self._get(repo.PREFIXES, object_id, "prefix")

    async def list_prefixes(
        self, where: Where, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await self._page(repo.PREFIXES, where, limit, offset)

    async def update_prefix(self, object_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        async with self._write() as conn:
            current = await repo.PREFIXES.get(conn, self.tenant_id, object_id, for_update=True)
            if current is None:
                raise NotFound(
                    "prefix-not-found", f"no prefix with id {object_id}", "id", object_id
                )
            merged = {**current, **changes}
            checks.check_prefix_fields(merged)
            await repo.lock_prefix(conn, merged["prefix"])
            await checks.check_prefix_claims(conn, self.tenant_id, merged, object_id)
            updated = await repo.PREFIXES.update(conn, self.tenant_id, object_id, changes)
            assert updated is not None
            return updated

    async def delete_prefix(self, object_id: int) -> None:
        await self._delete(repo.PREFIXES, object_id, "prefix")


class TenantService:
    """Tenant administration (development mode until SSO arrives)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, slug: str, name: str) -> dict[str, Any]:
        async with self.db.transaction() as conn, _translated():
            if await repo.tenant_by_slug(conn, slug) is not None:
                raise ConfigConflict(
                    "tenant-exists", f"tenant {slug!r} already exists", "slug", slug
                )
            return await repo.create_tenant(conn, slug, name)

    async def by_slug(self, slug: str) -> dict[str, Any] | None:
        async with self.db.connection() as conn:
            return await repo.tenant_by_slug(conn, slug)

    async def list(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        async with self.db.connection() as conn:
            return await repo.list_tenants(conn, limit, offset)

    async def delete(self, slug: str) -> None:
        async with self.db.transaction() as conn:
            if not await repo.delete_tenant(conn, slug):
                raise NotFound("tenant-not-found", f"no tenant {slug!r}", "slug", slug)
