"""The peering API against a real PostgreSQL: CRUD, paging, filters, validation, tenancy."""

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Tenant, make_tenant

pytestmark = pytest.mark.integration

SESSION = {
    "local_asn": 64500,
    "peer_asn": "AS65010",
    "peer_address": "192.0.2.10",
    "peering_lan": "192.0.2.0/24",
    "interconnect": "ixp",
    "ixp_name": "EXAMPLE-IX",
    "max_prefixes": 500,
    "import_policy": "IMPORT-PEERS",
    "export_policy": "EXPORT-CUSTOMERS",
    "md5_secret_ref": "vault:secret/bgp/example-ix/as65010#md5",
}


async def _create_session(client: httpx.AsyncClient, t: Tenant, **over: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/sessions", json={**SESSION, **over}, headers=t.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_session_round_trip(client: httpx.AsyncClient, acme: Tenant) -> None:
    created = await _create_session(client, acme)
    assert created["peer_asn"] == 65010
    assert created["afi"] == 4
    assert created["md5_secret_ref"].startswith("vault:")
    r = await client.get(f"/api/v1/sessions/{created['id']}", headers=acme.headers)
    assert r.status_code == 200
    assert r.json() == created

    r = await client.patch(
        f"/api/v1/sessions/{created['id']}",
        json={"admin_state": "maintenance", "description": "planned work"},
        headers=acme.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["admin_state"] == "maintenance"
    assert r.json()["updated_at"] >= created["updated_at"]

    r = await client.patch(
        f"/api/v1/sessions/{created['id']}",
        json={"ixp_name": None, "interconnect": "pni", "peering_lan": None},
        headers=acme.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["ixp_name"] is None and r.json()["interconnect"] == "pni"

    r = await client.delete(f"/api/v1/sessions/{created['id']}", headers=acme.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/sessions/{created['id']}", headers=acme.headers)
    assert r.status_code == 404
    assert r.json()["code"] == "session-not-found"


async def test_ipv6_sessions_are_normalised(client: httpx.AsyncClient, acme: Tenant) -> None:
    created = await _create_session(
        client,
        acme,
        peer_address="2001:DB8:0:0::A",
        peering_lan="2001:db8::/64",
        local_address="2001:db8::1",
    )
    assert created["peer_address"] == "2001:db8::a"
    assert created["afi"] == 6


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"peering_lan": "192.0.2.1/24"}, "peering_lan"),
        ({"peer_asn": 0}, "peer_asn"),
        ({"peer_asn": 4294967296}, "peer_asn"),
        ({"peer_asn": "AS4294967296"}, "peer_asn"),
        ({"local_asn": 0}, "local_asn"),
        ({"peer_address": "192.0.2.999"}, "peer_address"),
        ({"peer_address": "not-an-address"}, "peer_address"),
        ({"peer_address": "192.0.2.10/24"}, "peer_address"),
        ({"local_address": "2001:db8::zz"}, "local_address"),
        ({"max_prefixes": 0}, "max_prefixes"),
        ({"interconnect": "carrier-pigeon"}, "interconnect"),
        ({"md5_secret_ref": "plain-text-secret"}, "md5_secret_ref"),
        ({"description": "bad\x00byte"}, "description"),
    ],
)
async def test_invalid_session_input_is_422_naming_the_field(
    client: httpx.AsyncClient, acme: Tenant, change: dict[str, Any], field: str
) -> None:
    r = await client.post("/api/v1/sessions", json={**SESSION, **change}, headers=acme.headers)
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["field"] == field
    assert any(e["field"] == field for e in body["errors"])


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"peer_address": "198.51.100.1"}, "peer_address", "address-outside-lan"),
        ({"local_address": "2001:db8::1"}, "local_address", "address-family-mismatch"),
        ({"peering_lan": "2001:db8::/64"}, "peering_lan", "address-family-mismatch"),
        ({"peer_address": "192.0.2.0"}, "peer_address", "address-not-host"),
        (
            {"peer_address": "224.0.0.5", "peering_lan": None},
            "peer_address",
            "invalid-peer-address",
        ),
        ({"interconnect": "pni"}, "ixp_name", "ixp-name-without-ixp"),
    ],
)
async def test_inconsistent_sessions_are_422(
    client: httpx.AsyncClient, acme: Tenant, change: dict[str, Any], field: str, code: str
) -> None:
    r = await client.post("/api/v1/sessions", json={**SESSION, **change}, headers=acme.headers)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == (code, field)


async def test_malformed_json_is_4xx(client: httpx.AsyncClient, acme: Tenant) -> None:
    r = await client.post(
        "/api/v1/sessions",
        content=b"{not json",
        headers={**acme.headers, "content-type": "application/json"},
    )
    assert r.status_code == 422
    r = await client.post("/api/v1/sessions", json=[1, 2], headers=acme.headers)
    assert r.status_code == 422


async def test_paging_and_filters(client: httpx.AsyncClient, acme: Tenant) -> None:
    for i in range(12):
        await _create_session(
            client,
            acme,
            peer_asn=65100 + (i % 3),
            peer_address=f"192.0.2.{20 + i}",
            admin_state="disabled" if i % 4 == 0 else "enabled",
        )
    await _create_session(
        client, acme, peer_asn=65100, peer_address="2001:db8::20", peering_lan="2001:db8::/64"
    )
    h = acme.headers
    page = (await client.get("/api/v1/sessions?limit=5&offset=10", headers=h)).json()
    assert page["total"] == 13 and page["limit"] == 5 and page["offset"] == 10
    assert len(page["items"]) == 3
    ids = [s["id"] for s in page["items"]]
    assert ids == sorted(ids)

    async def count(query: str) -> int:
        r = await client.get(f"/api/v1/sessions?{query}", headers=h)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert await count("peer_asn=65100") == 5
    assert await count("peer_asn=AS65100&afi=6") == 1
    assert await count("admin_state=disabled") == 3
    assert await count("within=192.0.2.16/28") == 12
    assert await count("within=192.0.2.24/30") == 4
    assert await count("peer_address=192.0.2.21") == 1
    assert await count("ixp_name=EXAMPLE-IX") == 13
    r = await client.get("/api/v1/sessions?within=192.0.2.1/24", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "within"
    r = await client.get("/api/v1/sessions?limit=0", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "limit"
    r = await client.get("/api/v1/sessions?limit=100000", headers=h)
    assert r.status_code == 422


async def test_prefixes_crud_and_filters(client: httpx.AsyncClient, acme: Tenant) -> None:
    h = acme.headers
    r = await client.post(
        "/api/v1/prefixes", json={"prefix": "203.0.113.0/24", "origin_asns": ["AS64500"]}, headers=h
    )
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["max_length"] == 24 and p["origin_asns"] == [64500] and p["announced"] is True
    for body in (
        {"prefix": "198.51.100.0/22", "origin_asns": [64500, 64501], "max_length": 24},
        {"prefix": "2001:db8::/32", "origin_asns": [64500], "max_length": 48},
        {"prefix": "192.0.2.0/24", "announced": False},
    ):
        r = await client.post("/api/v1/prefixes", json=body, headers=h)
        assert r.status_code == 201, r.text

    async def prefixes(query: str) -> list[str]:
        r = await client.get(f"/api/v1/prefixes?{query}", headers=h)
        assert r.status_code == 200, r.text
        return [i["prefix"] for i in r.json()["items"]]

    assert await prefixes("covers=203.0.113.77") == ["203.0.113.0/24"]
    assert await prefixes("covers=198.51.101.0/24") == ["198.51.100.0/22"]
    assert await prefixes("within=198.51.0.0/16") == ["198.51.100.0/22"]
    assert await prefixes("origin_asn=64501") == ["198.51.100.0/22"]
    assert await prefixes("afi=6") == ["2001:db8::/32"]
    assert await prefixes("announced=false") == ["192.0.2.0/24"]

    r = await client.patch(f"/api/v1/prefixes/{p['id']}", json={"max_length": 25}, headers=h)
    assert r.status_code == 200 and r.json()["max_length"] == 25
    r = await client.patch(f"/api/v1/prefixes/{p['id']}", json={"max_length": 23}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "max_length"
    r = await client.patch(f"/api/v1/prefixes/{p['id']}", json={"origin_asns": []}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "origin_asns"
    r = await client.delete(f"/api/v1/prefixes/{p['id']}", headers=h)
    assert r.status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prefix": "203.0.113.1/24", "origin_asns": [64500]}, "prefix"),
        ({"prefix": "203.0.113.0/24", "origin_asns": [0]}, "origin_asns.0"),
        ({"prefix": "203.0.113.0/24", "origin_asns": [64500], "max_length": 33}, "max_length"),
        ({"prefix": "203.0.113.0/24"}, "origin_asns"),
        ({"prefix": "203.0.113.0/24", "origin_asns": [64500, 64500]}, "origin_asns"),
    ],
)
async def test_invalid_prefixes_are_422(
    client: httpx.AsyncClient, acme: Tenant, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/api/v1/prefixes", json=body, headers=acme.headers)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


async def test_a_prefix_names_its_own_neighbours(client: httpx.AsyncClient, acme: Tenant) -> None:
    h = acme.headers
    body = {"prefix": "193.0.20.0/22", "origin_asns": [200701], "upstream_asns": ["AS3356", 6939]}
    r = await client.post("/api/v1/prefixes", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["upstream_asns"] == [3356, 6939] and created["peer_asns"] == []
    r = await client.patch(
        f"/api/v1/prefixes/{created['id']}", json={"peer_asns": [200010]}, headers=h
    )
    assert r.status_code == 200 and r.json()["peer_asns"] == [200010], r.text
    for change, field, code in (
        ({"upstream_asns": [6939, 6939]}, "upstream_asns", "duplicate-neighbours"),
        ({"peer_asns": [200701]}, "peer_asns", "neighbour-is-origin"),
        ({"peer_asns": [3356]}, "peer_asns", "neighbour-twice"),
        ({"upstream_asns": [0]}, "upstream_asns.0", None),
    ):
        r = await client.patch(f"/api/v1/prefixes/{created['id']}", json=change, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
        if code:
            assert r.json()["code"] == code


async def test_asns_and_neighbors(client: httpx.AsyncClient, acme: Tenant) -> None:
    h = acme.headers
    r = await client.post("/api/v1/asns", json={"asn": "1.10", "name": "Acme EU"}, headers=h)
    assert r.status_code == 201 and r.json()["asn"] == 65546 and r.json()["asdot"] == "1.10"
    listing = (await client.get("/api/v1/asns?q=eu", headers=h)).json()
    assert [a["asn"] for a in listing["items"]] == [65546]
    r = await client.get("/api/v1/asns?q=%25", headers=h)  # a literal '%' matches nothing
    assert r.status_code == 200 and r.json()["total"] == 0

    for asn, rel in ((3356, "upstream"), (1299, "upstream"), (65010, "peer")):
        r = await client.post(
            "/api/v1/neighbors", json={"asn": asn, "relationship": rel}, headers=h
        )
        assert r.status_code == 201, r.text
    ups = (await client.get("/api/v1/neighbors?relationship=upstream", headers=h)).json()
    assert [n["asn"] for n in ups["items"]] == [1299, 3356]
    r = await client.post(
        "/api/v1/neighbors", json={"asn": 3356, "relationship": "peer"}, headers=h
    )
    assert r.status_code == 409 and r.json()["code"] == "neighbor-exists"


async def test_tenants_are_isolated(client: httpx.AsyncClient, acme: Tenant) -> None:
    other = await make_tenant(client, "globex", 64600)
    mine = await _create_session(client, acme)
    r = await client.get(f"/api/v1/sessions/{mine['id']}", headers=other.headers)
    assert r.status_code == 404
    r = await client.delete(f"/api/v1/sessions/{mine['id']}", headers=other.headers)
    assert r.status_code == 404
    assert (await client.get("/api/v1/sessions", headers=other.headers)).json()["total"] == 0
    # The same peer address may be used by another tenant's own router.
    theirs = await _create_session(client, other, local_asn=64600)
    assert theirs["peer_address"] == mine["peer_address"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "authentication-required"),
        ({"X-Tenant": "nobody"}, "unknown-tenant"),
        ({"X-Tenant": "Not A Slug"}, "invalid-tenant"),
    ],
)
async def test_tenant_header_is_required(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    r = await client.get("/api/v1/sessions", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == code


async def test_production_mode_refuses_the_tenant_header(
    db: Any, database_url: str, clean: None
) -> None:
    from bgp_orchestrator.api.app import create_app
    from bgp_orchestrator.settings import Settings

    settings = Settings(
        environment="production",
        database_url="postgresql://bgpo:a-real-secret@h/db",
        redis_url="redis://h:6379/0",
        kafka_bootstrap_servers="h:9092",
        victoria_metrics_url="http://h:8428",
        oidc_issuer="https://sso.example.net/realms/bgpo",
        api_key_secret="an-api-key-secret-of-at-least-32-characters",
    )
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        r = await c.get("/api/v1/sessions", headers={"X-Tenant": "acme"})
        assert r.status_code == 401 and r.json()["code"] == "authentication-required"
        r = await c.post(
            "/api/v1/tenants", json={"slug": "x", "name": "x"}, headers={"X-Role": "platform-admin"}
        )
        assert r.status_code == 401


async def test_health_readiness_metrics(client: httpx.AsyncClient, acme: Tenant) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["postgres"]["ok"] is True
    await client.get("/api/v1/sessions", headers=acme.headers)
    await client.get("/api/v1/sessions/999", headers=acme.headers)
    metrics = (await client.get("/metrics")).text
    assert 'bgpo_http_requests_total{method="GET",route="/api/v1/sessions",status="200"}' in metrics
    assert 'route="/api/v1/sessions/{session_id}",status="404"' in metrics
    assert "bgpo_database_up 1.0" in metrics
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/sessions" in spec["paths"]


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["code"] == "not-found"
    r = await client.put("/api/v1/sessions")
    assert r.status_code == 405
