"""API keys: shown once, stored as a keyed hash, one tenant and one role, expiry,
revocation and last use, through the API against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bgp_orchestrator.storage.database import Database
from tests.integration.conftest import Tenant, make_tenant

pytestmark = pytest.mark.integration


async def _create(client: httpx.AsyncClient, t: Tenant, **body: object) -> dict[str, object]:
    r = await client.post("/api/v1/api-keys", json={"name": "ci", **body}, headers=t.headers)
    assert r.status_code == 201, r.text
    created: dict[str, object] = r.json()
    return created


async def test_a_key_is_shown_once_stored_hashed_and_works_in_both_headers(
    client: httpx.AsyncClient, acme: Tenant, db: Database
) -> None:
    created = await _create(client, acme, role="operator")
    key = str(created["key"])
    assert key.startswith("bgpo_") and len(key) > 40
    assert created["prefix"] == key[:13] and created["last_used_at"] is None
    listed = (await client.get("/api/v1/api-keys", headers=acme.headers)).json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    assert (
        key
        not in (await client.get(f"/api/v1/api-keys/{created['id']}", headers=acme.headers)).text
    )
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT * FROM api_keys")
    assert row is not None
    assert key.encode() not in bytes(row["key_hash"]) and key not in str(dict(row))
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        r = await client.post("/api/v1/asns", json={"asn": 64510}, headers=headers)
        assert r.status_code in (201, 409), r.text
        # One role: an operator key cannot manage keys.
        assert (await client.get("/api/v1/api-keys", headers=headers)).status_code == 403
    used = (await client.get(f"/api/v1/api-keys/{created['id']}", headers=acme.headers)).json()
    assert used["last_used_at"] is not None


async def test_revoked_expired_and_unknown_keys_are_refused(
    client: httpx.AsyncClient, acme: Tenant, db: Database
) -> None:
    created = await _create(client, acme)
    key = {"X-API-Key": str(created["key"])}
    assert (await client.get("/api/v1/asns", headers=key)).status_code == 200
    r = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=acme.headers)
    assert r.status_code == 204
    r = await client.get("/api/v1/asns", headers=key)
    assert r.status_code == 401 and r.json()["code"] == "invalid-api-key"
    listed = (await client.get("/api/v1/api-keys", headers=acme.headers)).json()
    assert listed["items"][0]["revoked_at"] is not None

    soon = await _create(
        client, acme, expires_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    )
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            soon["id"],
        )
    r = await client.get("/api/v1/asns", headers={"X-API-Key": str(soon["key"])})
    assert r.status_code == 401
    r = await client.get("/api/v1/asns", headers={"Authorization": "Bearer bgpo_" + "x" * 43})
    assert r.status_code == 401


async def test_keys_are_scoped_to_their_tenant(client: httpx.AsyncClient, acme: Tenant) -> None:
    globex = await make_tenant(client, "globex", 64600)
    key = {"X-API-Key": str((await _create(client, acme, role="admin"))["key"])}
    other = await _create(client, globex)
    assert (await client.get(f"/api/v1/api-keys/{other['id']}", headers=key)).status_code == 404
    r = await client.delete(f"/api/v1/api-keys/{other['id']}", headers=key)
    assert r.status_code == 404
    assert (await client.get("/api/v1/api-keys", headers=key)).json()["total"] == 1
    assert (await client.get("/api/v1/tenants", headers=key)).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "role": "platform-admin"}, "role"),
        ({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"name": "x", "extra": 1}, "extra"),
    ],
)
async def test_invalid_requests_name_the_field(
    client: httpx.AsyncClient, acme: Tenant, body: dict[str, object], field: str
) -> None:
    r = await client.post("/api/v1/api-keys", json=body, headers=acme.headers)
    assert r.status_code == 422, r.text
    assert field in r.text
