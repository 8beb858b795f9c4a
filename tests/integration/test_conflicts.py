"""The configuration conflict checks: each case answers 409 with an explanation."""

import asyncio
from typing import Any

import httpx
import pytest

from bgp_orchestrator.peering import repository
from bgp_orchestrator.storage.database import Database
from tests.integration.conftest import Tenant, make_tenant

pytestmark = pytest.mark.integration

SESSION = {
    "local_asn": 64500,
    "peer_asn": 65010,
    "peer_address": "192.0.2.10",
    "interconnect": "ixp",
}


async def _post(
    client: httpx.AsyncClient, t: Tenant, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(path, json=body, headers=t.headers)


def _conflict(r: httpx.Response, code: str) -> dict[str, Any]:
    assert r.status_code == 409, r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert body["status"] == 409 and len(body["detail"]) > 40
    return body


async def test_same_session_twice(client: httpx.AsyncClient, acme: Tenant) -> None:
    first = await _post(client, acme, "/api/v1/sessions", SESSION)
    assert first.status_code == 201
    body = _conflict(await _post(client, acme, "/api/v1/sessions", SESSION), "session-exists")
    assert body["details"]["existing_session_id"] == first.json()["id"]
    assert "already exists" in body["detail"]


async def test_peer_address_used_by_two_sessions(client: httpx.AsyncClient, acme: Tenant) -> None:
    assert (await _post(client, acme, "/api/v1/sessions", SESSION)).status_code == 201
    r = await _post(client, acme, "/api/v1/sessions", {**SESSION, "peer_asn": 65020})
    body = _conflict(r, "peer-address-in-use")
    assert "192.0.2.10" in body["detail"] and "AS65010" in body["detail"]
    assert body["field"] == "peer_address"


async def test_peer_address_conflict_on_update(client: httpx.AsyncClient, acme: Tenant) -> None:
    assert (await _post(client, acme, "/api/v1/sessions", SESSION)).status_code == 201
    other = await _post(client, acme, "/api/v1/sessions", {**SESSION, "peer_address": "192.0.2.11"})
    r = await client.patch(
        f"/api/v1/sessions/{other.json()['id']}",
        json={"peer_address": "192.0.2.10"},
        headers=acme.headers,
    )
    _conflict(r, "session-exists")


async def test_prefix_claimed_by_two_tenants_with_different_origins(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    globex = await make_tenant(client, "globex", 64600)
    prefix = {"prefix": "203.0.113.0/24", "origin_asns": [64500]}
    assert (await _post(client, acme, "/api/v1/prefixes", prefix)).status_code == 201
    r = await _post(client, globex, "/api/v1/prefixes", {**prefix, "origin_asns": [64600]})
    body = _conflict(r, "prefix-claimed-with-other-origins")
    # The other tenant's origins are not revealed (only the caller's own ones are named).
    assert "AS64500" not in r.text and "acme" not in r.text.lower()
    assert "AS64600" in body["detail"]
    # The same origins (e.g. a managed customer) are not a conflict.
    assert (await _post(client, globex, "/api/v1/prefixes", prefix)).status_code == 201
    # Nor is a more-specific with another origin (provider-assigned space).
    r = await _post(
        client, globex, "/api/v1/prefixes", {"prefix": "203.0.113.0/25", "origin_asns": [64600]}
    )
    assert r.status_code == 201
    # The same tenant registering it twice is.
    _conflict(await _post(client, acme, "/api/v1/prefixes", prefix), "prefix-exists")


async def test_session_whose_local_asn_is_not_the_tenants(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    await make_tenant(client, "globex", 64600)
    r = await _post(client, acme, "/api/v1/sessions", {**SESSION, "local_asn": 64600})
    body = _conflict(r, "local-asn-not-owned")
    assert "AS64600" in body["detail"] and "AS64500" in body["detail"]
    assert body["details"]["tenant_asns"] == [64500]


async def test_max_prefix_below_what_the_peer_announces(
    client: httpx.AsyncClient, acme: Tenant, db: Database
) -> None:
    async with db.connection() as conn:
        await repository.record_peer_prefix_count(conn, 65010, 4, "ris-live", 1200)
        await repository.record_peer_prefix_count(conn, 65010, 4, "route-views", 1180)
        await repository.record_peer_prefix_count(conn, 65010, 6, "ris-live", 90)
    r = await _post(client, acme, "/api/v1/sessions", {**SESSION, "max_prefixes": 1000})
    body = _conflict(r, "max-prefix-below-announced")
    assert "1200" in body["detail"] and "ris-live" in body["detail"]
    assert body["details"]["announced_prefixes"] == 1200
    ok = await _post(client, acme, "/api/v1/sessions", {**SESSION, "max_prefixes": 1500})
    assert ok.status_code == 201
    # Lowering it afterwards is refused the same way.
    r = await client.patch(
        f"/api/v1/sessions/{ok.json()['id']}", json={"max_prefixes": 100}, headers=acme.headers
    )
    _conflict(r, "max-prefix-below-announced")
    # IPv6 is judged against the IPv6 count.
    v6 = {**SESSION, "peer_address": "2001:db8::10", "max_prefixes": 100}
    assert (await _post(client, acme, "/api/v1/sessions", v6)).status_code == 201


async def test_asn_ownership_conflicts(client: httpx.AsyncClient, acme: Tenant) -> None:
    globex = await make_tenant(client, "globex")
    _conflict(
        await _post(client, globex, "/api/v1/asns", {"asn": 64500}), "asn-registered-elsewhere"
    )
    _conflict(await _post(client, acme, "/api/v1/asns", {"asn": 64500}), "asn-exists")
    assert (await _post(client, acme, "/api/v1/sessions", SESSION)).status_code == 201
    asn_id = (await client.get("/api/v1/asns?asn=64500", headers=acme.headers)).json()["items"][0][
        "id"
    ]
    r = await client.delete(f"/api/v1/asns/{asn_id}", headers=acme.headers)
    _conflict(r, "asn-in-use")


async def test_concurrent_writers_get_one_success_and_409s(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    results = await asyncio.gather(
        *(
            _post(client, acme, "/api/v1/sessions", {**SESSION, "peer_asn": 65000 + i})
            for i in range(8)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 7
