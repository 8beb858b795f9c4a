"""API keys for machines: made from a secure random source, shown once, stored as a keyed hash.

A key reads ``bgpo_<43 url-safe characters>`` (256 random bits). Only
HMAC-SHA256(key, secret) is stored, under a secret of the deployment
(``BGPO_API_KEY_SECRET``; in development one generated in the data directory), so a
copy of the table alone does not let anyone use or brute-force the keys. Each key has
one tenant (none for a platform administrator's key), one role, an optional expiry,
a revocation time and the last time it was used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bgp_orchestrator.auth.principal import Principal, Role
from bgp_orchestrator.errors import ConfigurationError, InvalidInput, NotFound
from bgp_orchestrator.settings import Settings

PREFIX = "bgpo_"
#: The characters kept to recognise a key in a list (``bgpo_`` and 8 more).
SHOWN = len(PREFIX) + 8
#: last_used_at is written at most this often per key (not on every request).
LAST_USED_EVERY = timedelta(seconds=60)
_COLUMNS = (
    "id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, "
    "last_used_at"
)


def looks_like_key(value: str) -> bool:
    return value.startswith(PREFIX) and 20 < len(value) < 200


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def secret_of(settings: Settings) -> bytes:
    """The HMAC key: BGPO_API_KEY_SECRET, or in development one kept in the data dir."""
    if settings.api_key_secret is not None:
        return settings.api_key_secret.get_secret_value().encode()
    if not settings.development:
        raise ConfigurationError(
            "api-key-secret-missing", "production needs BGPO_API_KEY_SECRET to hash API keys"
        )
    path = settings.data_dir / "secrets" / "api-key-secret"
    return _file_secret(path)


def _file_secret(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another replica wrote it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(value)
    return value


def hash_key(key: str, secret: bytes) -> bytes:
    return hmac.new(secret, key.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class CreatedKey:
    key: str
    row: dict[str, Any]


def _check_role(tenant_id: int | None, role: Role) -> None:
    if (tenant_id is None) != (role is Role.PLATFORM_ADMIN):
        raise InvalidInput(
            "api-key-scope",
            "a platform-admin key belongs to no tenant; every other key to exactly one",
            "role",
            str(role),
        )


async def create(
    conn: asyncpg.Connection,
    secret: bytes,
    tenant_id: int | None,
    name: str,
    role: Role,
    created_by: str,
    expires_at: datetime | None = None,
) -> CreatedKey:
    """A new key of ``tenant_id``; the plain key is in the result and nowhere else."""
    _check_role(tenant_id, role)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput(
            "api-key-expired", "expires_at must be in the future", "expires_at", expires_at
        )
    key = new_key()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (tenant_id, name, role, prefix, key_hash, created_by, expires_at) "  # noqa: S608 (constant columns)
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
        tenant_id,
        name,
        str(role),
        key[:SHOWN],
        hash_key(key, secret),
        created_by,
        expires_at,
    )
    assert row is not None
    return CreatedKey(key, dict(row))


async def list_keys(
    conn: asyncpg.Connection, tenant_id: int, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY id LIMIT $2 OFFSET $3",  # noqa: S608
        tenant_id,
        limit,
        offset,
    )
    total = await conn.fetchval("SELECT count(*) FROM api_keys WHERE tenant_id = $1", tenant_id)
    return [dict(r) for r in rows], int(total)


async def get(conn: asyncpg.Connection, tenant_id: int, key_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2",  # noqa: S608
        tenant_id,
        key_id,
    )
    if row is None:
        raise NotFound("api-key-not-found", f"no API key with id {key_id}", "id", key_id)
    return dict(row)


async def revoke(conn: asyncpg.Connection, tenant_id: int, key_id: int) -> dict[str, Any]:
    """Revoke a key of ``tenant_id`` (revoking twice keeps the first time)."""
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "  # noqa: S608
        f"WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        tenant_id,
        key_id,
    )
    if row is None:
        raise NotFound("api-key-not-found", f"no API key with id {key_id}", "id", key_id)
    return dict(row)


async def authenticate(conn: asyncpg.Connection, secret: bytes, key: str) -> Principal | None:
    """The principal of a valid key (not revoked, not expired), else None; records its use."""
    row = await conn.fetchrow(
        "SELECT id, tenant_id, role, last_used_at FROM api_keys "
        "WHERE key_hash = $1 AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now())",
        hash_key(key, secret),
    )
    if row is None:
        return None
    last = row["last_used_at"]
    if last is None or datetime.now(UTC) - last >= LAST_USED_EVERY:
        await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", row["id"])
    return Principal(
        subject=f"api-key:{row['id']}",
        tenant_id=row["tenant_id"],
        roles=frozenset({Role(row["role"])}),
        credential="api_key",
    )
