"""cluster/keycloak/realm.json configures Keycloak the way the settings expect tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.settings import Settings

REALM = Path(__file__).resolve().parents[2] / "cluster" / "keycloak" / "realm.json"


def _realm() -> dict[str, Any]:
    realm: dict[str, Any] = json.loads(REALM.read_text())
    return realm


def _client(realm: dict[str, Any], client_id: str) -> dict[str, Any]:
    found = [c for c in realm["clients"] if c["clientId"] == client_id]
    assert found, f"realm.json has no client {client_id!r}"
    return found[0]


def _mappers(realm: dict[str, Any], client: dict[str, Any]) -> list[dict[str, Any]]:
    scopes = {s["name"]: s for s in realm["clientScopes"]}
    out = list(client.get("protocolMappers", []))
    for name in client.get("defaultClientScopes", []):
        out += scopes.get(name, {}).get("protocolMappers", [])
    return out


def test_names_the_clients_roles_and_claims_the_settings_expect() -> None:
    settings = Settings()
    realm = _realm()
    assert {r["name"] for r in realm["roles"]["realm"]} == {r.value for r in Role}
    portal = _client(realm, settings.portal_client_id)
    api = _client(realm, settings.oidc_audience)
    assert api["bearerOnly"] is True
    assert portal["publicClient"] is False and portal["standardFlowEnabled"] is True
    assert portal["attributes"]["pkce.code.challenge.method"] == "S256"
    assert portal["implicitFlowEnabled"] is False and portal["directAccessGrantsEnabled"] is False
    for client in (portal, api):
        claims = {m["config"].get("claim.name") for m in _mappers(realm, client)}
        assert settings.oidc_tenant_claim in claims, client["clientId"]
        assert settings.oidc_roles_claim in claims, client["clientId"]
    audiences = {
        m["config"]["included.client.audience"]
        for m in _mappers(realm, portal)
        if m["protocolMapper"] == "oidc-audience-mapper"
    }
    # The portal's access tokens are accepted by the API (aud = BGPO_OIDC_AUDIENCE).
    assert settings.oidc_audience in audiences
    assert realm["defaultSignatureAlgorithm"] in settings.oidc_algorithms


def test_no_secret_is_committed() -> None:
    for client in _realm()["clients"]:
        assert client.get("secret") in (None, "**********"), client["clientId"]
