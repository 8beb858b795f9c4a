"""Bearer tokens of the real embedded OIDC provider (its own process) through the API."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.auth.jwks import JwksCache
from bgp_orchestrator.local.oidc import DEMO_TENANT, DEMO_USERS, EmbeddedOIDC, login
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.auth_helpers import unsigned
from tests.conftest import free_port
from tests.integration.conftest import PLATFORM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ADMIN, OPERATOR, VIEWER, PLATFORM_USER = (u.sub for u in DEMO_USERS)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[EmbeddedOIDC]:
    server = EmbeddedOIDC(Settings(data_dir=tmp_path, embedded_oidc_port=free_port()))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def api(
    provider: EmbeddedOIDC, database_url: str, db: Database, clean: None, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, embedded_oidc_port=provider.port
    )
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        r = await client.post(
            "/api/v1/tenants", json={"slug": DEMO_TENANT, "name": "Demo"}, headers=PLATFORM
        )
        assert r.status_code == 201, r.text
        yield client


def token(provider: EmbeddedOIDC, user: str, client_id: str = "bgpo-api") -> str:
    return str(login(provider.url, user, client_id)["id_token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


async def test_the_providers_tokens_carry_tenant_and_roles(
    api: httpx.AsyncClient, provider: EmbeddedOIDC
) -> None:
    admin = bearer(token(provider, ADMIN))
    assert (await api.get("/api/v1/asns", headers=admin)).status_code == 200
    r = await api.post("/api/v1/asns", json={"asn": 64501}, headers=admin)
    assert r.status_code == 201, r.text
    r = await api.post("/api/v1/api-keys", json={"name": "ci", "role": "operator"}, headers=admin)
    assert r.status_code == 201, r.text
    r = await api.post("/api/v1/asns", json={"asn": 64502}, headers=bearer(token(provider, VIEWER)))
    assert r.status_code == 403 and r.json()["code"] == "role-required"
    operator = bearer(token(provider, OPERATOR))
    assert (
        await api.post("/api/v1/asns", json={"asn": 64503}, headers=operator)
    ).status_code == 201
    assert (await api.get("/api/v1/api-keys", headers=operator)).status_code == 403
    platform = bearer(token(provider, PLATFORM_USER))
    r = await api.get("/api/v1/tenants", headers=platform)
    assert r.status_code == 200 and r.json()["total"] == 1
    assert (await api.get("/api/v1/asns", headers=platform)).status_code == 403


async def test_bad_tokens_are_refused(api: httpx.AsyncClient, provider: EmbeddedOIDC) -> None:
    good = token(provider, VIEWER)
    header, _payload, signature = good.split(".")
    claims = _claims(good)
    promoted = {**claims, "realm_access": {"roles": ["platform-admin"]}}
    forged_payload = base64.urlsafe_b64encode(json.dumps(promoted).encode()).rstrip(b"=")
    bad = {
        "forged": f"{header}.{forged_payload.decode()}.{signature}",
        "wrong-audience": token(provider, VIEWER, client_id="some-other-client"),
        "alg-none": unsigned(promoted),
        "opaque-access-token": str(login(provider.url, VIEWER, "bgpo-api")["access_token"]),
        "truncated": good[:-10],
    }
    for name, value in bad.items():
        r = await api.get("/api/v1/asns", headers=bearer(value))
        assert r.status_code == 401, (name, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_token_of_another_issuer_is_refused(api: httpx.AsyncClient, tmp_path: Path) -> None:
    other = EmbeddedOIDC(Settings(data_dir=tmp_path / "other", embedded_oidc_port=free_port()))
    other.start()
    try:
        foreign = token(other, ADMIN)
    finally:
        other.stop()
    r = await api.get("/api/v1/asns", headers=bearer(foreign))
    assert r.status_code == 401


async def test_a_token_signed_with_a_rotated_out_key_is_refused(
    api: httpx.AsyncClient, provider: EmbeddedOIDC
) -> None:
    before = token(provider, ADMIN)
    assert (await api.get("/api/v1/asns", headers=bearer(before))).status_code == 200
    # The provider keeps its key in memory: a restart rotates it.
    provider.stop()
    provider.start()
    # Forced refetches are spaced (a flood of bad tokens must not hammer the issuer).
    await asyncio.sleep(JwksCache(provider.url).min_refetch_s)
    after = token(provider, ADMIN)
    # The new key is unknown to the API's cache: it fetches the JWKS again and accepts it.
    assert (await api.get("/api/v1/asns", headers=bearer(after))).status_code == 200
    r = await api.get("/api/v1/asns", headers=bearer(before))
    assert r.status_code == 401, r.text
