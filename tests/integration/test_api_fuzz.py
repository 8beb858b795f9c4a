"""Schemathesis over the OpenAPI spec: no request a client can send gets a 5xx.

The API runs under a real uvicorn server over the session's PostgreSQL, and every
generated request carries a real credential, so it gets past authentication into
the handlers and the data layer:

- the tenant pass: an admin API key of a tenant that owns some ASNs (created with
  the storage functions), over every operation;
- the platform pass: an OIDC bearer token of a platform administrator, signed
  here and checked against the JWKS this test serves, over the operations the
  platform administrator may call (platform actions and the flap reads).

The generated credential headers of the spec (Authorization, X-API-Key, X-Tenant,
X-Role) are replaced by the pass's credential.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from bgp_orchestrator.api.access import Access
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.auth import apikeys
from bgp_orchestrator.auth.jwks import JwksCache
from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.auth.tokens import TokenValidator
from bgp_orchestrator.peering import repository
from bgp_orchestrator.settings import Settings
from tests.auth_helpers import AUDIENCE, ISSUER, LocalIssuer
from tests.integration.conftest import LiveServer
from tests.unit.test_access_rules import declared_rules

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TENANT = "fuzz"
#: Examples per operation: about 50 operations for the tenant, 7 for the platform
#: (both passes take about 3 minutes on 2 shared cores).
TENANT_EXAMPLES = 40
PLATFORM_EXAMPLES = 100
CREDENTIAL_HEADERS = {"authorization", "x-api-key", "x-tenant", "x-role"}


class Fuzzed:
    def __init__(self, server: LiveServer, key: str, key_id: int, token: str) -> None:
        self.url = server.url
        self.tenant = {"Authorization": f"Bearer {key}"}
        self.key_id = key_id
        self.platform = {"Authorization": f"Bearer {token}"}


async def _seed(database_url: str, secret: bytes) -> tuple[str, int]:
    """The fuzz tenant, its ASNs and an admin API key (the plain key and its id)."""
    conn = await asyncpg.connect(database_url)
    try:
        tenant = await repository.tenant_by_slug(conn, TENANT)
        if tenant is None:
            tenant = await repository.create_tenant(conn, TENANT, "Fuzz")
        for asn in (1, 64500, 65000, 4294967295):
            await conn.execute(
                "INSERT INTO autonomous_systems (tenant_id, asn) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                tenant["id"],
                asn,
            )
        created = await apikeys.create(
            conn, secret, tenant["id"], "fuzz", Role.ADMIN, created_by="test_api_fuzz"
        )
        return created.key, int(created.row["id"])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        metric_store="parquet",
        # Thousands of requests on one key: the limits would answer 429, not the handlers.
        rate_limit_key_per_minute=0,
        rate_limit_tenant_per_minute=0,
    )
    issuer = LocalIssuer()
    app = create_app(settings)
    app.state.token_validator = TokenValidator(
        ISSUER,
        AUDIENCE,
        ["RS256"],
        "realm_access.roles",
        "tenant",
        JwksCache(ISSUER, transport=issuer.transport()),
    )
    key, key_id = asyncio.run(_seed(database_url, apikeys.secret_of(settings)))
    token = issuer.token(
        sub="fuzz-platform",
        tenant=None,
        realm_access={"roles": ["platform-admin"]},
        exp=int(time.time()) + 3600,
    )
    with LiveServer(app) as server:
        yield Fuzzed(server, key, key_id, token)


# The spec does not depend on the database: build it from an app that never connects.
# The live stream never ends by design; it has its own test (test_conflicts_api.py).
# Materializing needs a Ray head; test_flap_prediction.py and the e2e test cover it.
UNFUZZED = ("/api/v1/conflicts/stream", "/api/v1/features/materialize")
#: These read the caller's sessions in PostgreSQL, then a predictor or the online
#: store this server does not have: their own 503 says so (any other 5xx is a bug).
SERVICE_BOUND = {
    "/api/v1/ml/predict": "predictor-unavailable",
    "/api/v1/features/serve": "online-store-unconfigured",
}
schema = schemathesis.openapi.from_dict(
    create_app(Settings(database_url="postgresql://spec-only@localhost/none")).openapi()
)
for _path in UNFUZZED:
    schema = schema.exclude(path=_path)

_PLATFORM_OPERATIONS = {
    key
    for key, rules in declared_rules().items()
    if rules in ([Access.PLATFORM_ADMIN], [Access.READER])
}
platform_schema = schema.include(
    func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in _PLATFORM_OPERATIONS
)


def _run(case: schemathesis.Case, url: str, credential: dict[str, str]) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in CREDENTIAL_HEADERS}
    case.headers = {**headers, **credential}
    response = case.call(base_url=url)
    # The credential is valid for the whole run: a 401 would mean the pass stopped
    # reaching the handlers.
    assert response.status_code != 401, response.text
    expected_503 = SERVICE_BOUND.get(case.path)
    if response.status_code == 503 and expected_503 is not None:
        body: Any = response.json()
        assert body.get("code") == expected_503, response.text
        return
    case.validate_response(response, checks=[not_a_server_error])


_SETTINGS = {
    "deadline": None,
    "suppress_health_check": list(hypothesis.HealthCheck),
    "derandomize": True,
    "database": None,
}


@schema.parametrize()
@hypothesis.settings(max_examples=TENANT_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
def test_no_server_errors_for_a_tenant_admin(case: schemathesis.Case, api: Fuzzed) -> None:
    # The pass's own key stays: revoking it would leave the rest of the run at 401.
    revoking = case.path == "/api/v1/api-keys/{key_id}" and case.method.upper() == "DELETE"
    if revoking and str((case.path_parameters or {}).get("key_id")) == str(api.key_id):
        case.path_parameters = {"key_id": api.key_id + 1_000_000}
    _run(case, api.url, api.tenant)


@platform_schema.parametrize()
@hypothesis.settings(max_examples=PLATFORM_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
def test_no_server_errors_for_the_platform_admin(case: schemathesis.Case, api: Fuzzed) -> None:
    _run(case, api.url, api.platform)
