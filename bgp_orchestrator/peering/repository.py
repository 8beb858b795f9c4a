"""SQL for the peering inventory; every statement is tenant-scoped and parameterised.

Table and column names in the SQL below come from the constants of this
module, never from a request; values always travel as ``$n`` parameters.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bgp_orchestrator.model.asn import format_asdot


@dataclass
class Where:
    """A conjunction of SQL conditions with numbered parameters."""

    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, clause: str, *values: Any) -> Where:
        """``clause`` holds one ``{}`` per value, replaced by ``$n``."""
        placeholders = []
        for value in values:
            self.args.append(value)
            placeholders.append(f"${len(self.args)}")
        self.clauses.append(clause.format(*placeholders))
        return self

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


def _plain(value: Any) -> Any:
    if isinstance(
        value,
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network,
    ):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value.ip) if value.network.prefixlen == value.max_prefixlen else str(value)
    return value


def row_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A record as plain Python values (addresses and prefixes as strings)."""
    out = {key: _plain(value) for key, value in row.items()}
    out.pop("tenant_id", None)
    if "asn" in out and "asdot" not in out and isinstance(out["asn"], int):
        out["asdot"] = format_asdot(out["asn"])
    return out


class TenantTable:
    """Create/read/update/delete and paging of one tenant-scoped table.

    ``text_columns`` (inet/cidr) are selected as text by PostgreSQL, which is
    much cheaper than decoding them into ``ipaddress`` objects and back.
    """

    def __init__(
        self,
        name: str,
        columns: Sequence[str],
        order_by: str = "id",
        text_columns: Mapping[str, str] | None = None,
        generated: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.columns = frozenset(columns)
        self.order_by = order_by
        casts = text_columns or {}
        output = ["id", *columns, *generated, "created_at", "updated_at"]
        self.select = ", ".join(f"{casts[c]} AS {c}" if c in casts else c for c in output)

    def _out(self, row: asyncpg.Record) -> dict[str, Any]:
        return row_dict(row)

    def _check(self, values: Mapping[str, Any]) -> None:
        unknown = set(values) - self.columns
        if unknown:
            raise ValueError(f"{self.name} has no column(s) {sorted(unknown)}")

    async def insert(
        self, conn: asyncpg.Connection, tenant_id: int, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._check(values)
        names = ["tenant_id", *values]
        params = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        row = await conn.fetchrow(
            f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({params}) "
            f"RETURNING {self.select}",
            tenant_id,
            *values.values(),
        )
        assert row is not None
        return self._out(row)

    async def get(
        self, conn: asyncpg.Connection, tenant_id: int, object_id: int, *, for_update: bool = False
    ) -> dict[str, Any] | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT {self.select} FROM {self.name} WHERE tenant_id = $1 AND id = $2{lock}",
            tenant_id,
            object_id,
        )
        return self._out(row) if row is not None else None

    async def update(
        self,
        conn: asyncpg.Connection,
        tenant_id: int,
        object_id: int,
        values: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        self._check(values)
        if not values:
            return await self.get(conn, tenant_id, object_id)
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=3))
        row = await conn.fetchrow(
            f"UPDATE {self.name} SET {sets}, updated_at = now() "
            f"WHERE tenant_id = $1 AND id = $2 RETURNING {self.select}",
            tenant_id,
            object_id,
            *values.values(),
        )
        return self._out(row) if row is not None else None

    async def delete(self, conn: asyncpg.Connection, tenant_id: int, object_id: int) -> bool:
        status = await conn.execute(
            f"DELETE FROM {self.name} WHERE tenant_id = $1 AND id = $2", tenant_id, object_id
        )
        return bool(status == "DELETE 1")

    async def page(
        self,
        conn: asyncpg.Connection,
        tenant_id: int,
        where: Where,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page and the count of matching rows (one round trip unless the page is empty)."""
        scoped = Where(list(where.clauses), list(where.args))
        scoped.add("tenant_id = {}", tenant_id)
        condition = scoped.sql()
        n = len(scoped.args)
        rows = await conn.fetch(
            f"SELECT {self.select}, count(*) OVER () AS total_rows FROM {self.name} "
            f"WHERE {condition} "
            f"ORDER BY {self.order_by} LIMIT ${n + 1} OFFSET ${n + 2}",
            *scoped.args,
            limit,
            offset,
        )
        if rows:
            total = int(rows[0]["total_rows"])
        elif offset == 0:
            total = 0
        else:
            total = int(
                await conn.fetchval(
                    f"SELECT count(*) FROM {self.name} WHERE {condition}", *scoped.args
                )
            )
        items = []
        for row in rows:
            item = self._out(row)
            item.pop("total_rows", None)
            items.append(item)
        return items, total


ASNS = TenantTable("autonomous_systems", ("asn", "name", "description"), order_by="asn, id")
NEIGHBORS = TenantTable("neighbor_asns", ("asn", "relationship", "description"), "asn, id")
SESSIONS = TenantTable(
    "peering_sessions",
    (
        "local_asn",
        "peer_asn",
        "peer_address",
        "local_address",
        "peering_lan",
        "interconnect",
        "ixp_name",
        "description",
        "max_prefixes",
        "import_policy",
        "export_policy",
        "admin_state",
        "md5_secret_ref",
    ),
    text_columns={
        "peer_address": "host(peer_address)",
        "local_address": "host(local_address)",
        "peering_lan": "peering_lan::text",
    },
    generated=("afi",),
)
WEBHOOKS = TenantTable(
    "webhooks", ("name", "url", "format", "min_severity", "types", "enabled"), "id"
)
PREFIXES = TenantTable(
    "prefixes",
    (
        "prefix",
        "origin_asns",
        "max_length",
        "announced",
        "description",
        "upstream_asns",
        "peer_asns",
    ),
    "prefix, id",
    text_columns={"prefix": "prefix::text"},
    generated=("afi",),
)


# --- tenants (not tenant-scoped themselves) ---------------------------------------


async def create_tenant(conn: asyncpg.Connection, slug: str, name: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING *", slug, name
    )
    assert row is not None
    return row_dict(row)


async def tenant_by_slug(conn: asyncpg.Connection, slug: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM tenants WHERE slug = $1", slug)
    return row_dict(row) if row is not None else None


async def list_tenants(
    conn: asyncpg.Connection, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    total = await conn.fetchval("SELECT count(*) FROM tenants")
    rows = await conn.fetch("SELECT * FROM tenants ORDER BY id LIMIT $1 OFFSET $2", limit, offset)
    return [row_dict(r) for r in rows], int(total)


async def delete_tenant(conn: asyncpg.Connection, slug: str) -> bool:
    status = await conn.execute("DELETE FROM tenants WHERE slug = $1", slug)
    return bool(status == "DELETE 1")


async def lock_tenant(conn: asyncpg.Connection, tenant_id: int) -> None:
    """Serialise configuration writes of one tenant so conflict checks are exact."""
    await conn.execute("SELECT pg_advisory_xact_lock(1, $1::int)", tenant_id % 2_147_483_647)


async def lock_prefix(conn: asyncpg.Connection, prefix: str) -> None:
    """Serialise claims on one prefix across tenants."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('prefix:' || $1, 0))", prefix)


# --- peer observations -----------------------------------------------------------


async def record_peer_prefix_count(
    conn: asyncpg.Connection, peer_asn: int, afi: int, source: str, prefix_count: int
) -> None:
    """Store how many prefixes a peer ASN announces, as seen by ``source``."""
    await conn.execute(
        """
        INSERT INTO peer_prefix_counts (peer_asn, afi, source, prefix_count, observed_at)
        VALUES ($1, $2, $3, $4, now())
        ON CONFLICT (peer_asn, afi, source)
        DO UPDATE SET prefix_count = EXCLUDED.prefix_count, observed_at = EXCLUDED.observed_at
        """,
        peer_asn,
        afi,
        source,
        prefix_count,
    )


async def announced_prefix_count(
    conn: asyncpg.Connection, peer_asn: int, afi: int
) -> asyncpg.Record | None:
    """The largest recent count of prefixes the peer announces, with its source."""
    return await conn.fetchrow(
        """
        SELECT prefix_count, source, observed_at FROM peer_prefix_counts
        WHERE peer_asn = $1 AND afi = $2
        ORDER BY prefix_count DESC LIMIT 1
        """,
        peer_asn,
        afi,
    )
