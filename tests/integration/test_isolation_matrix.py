"""The isolation matrix: every route x every kind of caller x own / other tenant's object.

Generated from ``app.routes``: a new route is exercised here, and fails the test until
it has a request in ``BODIES`` (when it takes a body) and its path parameters are
known to ``World``. Callers are real API keys (and no credentials at all); the answer
must be 401 without credentials, 403 for too small a role (or a caller of no tenant on
a tenant route), 404 for another tenant's object, and anything but those for an
allowed caller on its own object. No answer to tenant A may mention tenant B's objects.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from bgp_orchestrator.api.access import Access
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.auth.principal import TENANT_RANK, Role
from bgp_orchestrator.detection.conflict import ConflictType
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.integration.conftest import PLATFORM, TABLES, mint_key
from tests.integration.test_conflicts_api import conflict, write
from tests.unit.test_access_rules import declared_rules

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Written into every object of tenant B: no answer to a caller of tenant A may hold it.
MARK_B = "zz-tenant-b-secret"

#: A valid request body per route that takes one ({own} is replaced by the caller's).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/tenants"): {"slug": "newco", "name": "New Co"},
    ("POST", "/api/v1/asns"): {"asn": 64999, "name": "new"},
    ("PATCH", "/api/v1/asns/{asn_id}"): {"name": "renamed"},
    ("POST", "/api/v1/neighbors"): {"asn": 3320, "relationship": "peer"},
    ("PATCH", "/api/v1/neighbors/{neighbor_id}"): {"relationship": "upstream"},
    ("POST", "/api/v1/sessions"): {
        "local_asn": "{asn}",
        "peer_asn": 65077,
        "peer_address": "198.51.100.77",
        "interconnect": "pni",
    },
    ("PATCH", "/api/v1/sessions/{session_id}"): {"description": "changed"},
    ("POST", "/api/v1/prefixes"): {"prefix": "{new_prefix}", "origin_asns": ["{asn}"]},
    ("PATCH", "/api/v1/prefixes/{prefix_id}"): {"max_length": 24},
    ("POST", "/api/v1/conflicts/{conflict_id}/acknowledge"): {},
    ("POST", "/api/v1/conflicts/{conflict_id}/resolve"): {},
    ("POST", "/api/v1/conflicts/{conflict_id}/ignore"): {},
    ("POST", "/api/v1/webhooks"): {"name": "new-hook", "url": "https://1.1.1.1/bgpo"},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"min_severity": "high"},
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): None,
    ("POST", "/api/v1/webhooks/{webhook_id}/secret"): None,
    ("POST", "/api/v1/ml/predict"): {"sessions": ["{session_key}"]},
    ("POST", "/api/v1/features/serve"): {"sessions": ["{session_key}"]},
    ("POST", "/api/v1/features/materialize"): None,
    ("POST", "/api/v1/anomalies/detect"): {"series": ["updates/rrc00|192.0.2.1"], "days": 1},
    ("POST", "/api/v1/ml/models/{version}/activate"): None,
    ("POST", "/api/v1/api-keys"): {"name": "robot", "role": "viewer"},
}
#: Routes whose own-object answer depends on services this test does not run (a
#: predictor, Redis, a Ray head): 401/403/404 are still checked, 503 is accepted.
NO_SERVICES = {"/api/v1/ml/predict", "/api/v1/features/serve", "/api/v1/features/materialize"}
#: Routes whose object is named in the body (the flap-model id of the target tenant's
#: peering session): another tenant's answers 404, as a path id would.
BODY_OBJECTS = {"/api/v1/ml/predict", "/api/v1/features/serve"}
STREAMS = {"/api/v1/conflicts/stream"}


@dataclass
class TenantObjects:
    slug: str
    asn: int
    peer: str
    ids: dict[str, int] = field(default_factory=dict)
    new_prefix: str = ""


@dataclass
class World:
    a: TenantObjects
    b: TenantObjects
    callers: dict[str, dict[str, str]]
    model_version: int

    def tenant_of(self, caller: str) -> TenantObjects | None:
        return {"viewer-a": self.a, "operator-a": self.a, "admin-a": self.a, "admin-b": self.b}.get(
            caller
        )


CALLERS = ["none", "viewer-a", "operator-a", "admin-a", "admin-b", "platform"]
ROLE_OF = {
    "viewer-a": Role.VIEWER,
    "operator-a": Role.OPERATOR,
    "admin-a": Role.ADMIN,
    "admin-b": Role.ADMIN,
}


async def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


async def build_world(client: httpx.AsyncClient, db: Database, settings: Settings) -> World:
    async with db.connection() as conn:
        await conn.execute(f"TRUNCATE {TABLES}, flap_models, anomalies RESTART IDENTITY CASCADE")
    objects = {}
    for slug, asn, net, peer, mark in (
        ("tenant-a", 64500, "203.0.113", "192.0.2.1", "a-own"),
        ("tenant-b", 64600, "198.18.0", "192.0.2.2", MARK_B),
    ):
        await _ok(
            await client.post(
                "/api/v1/tenants", json={"slug": slug, "name": mark}, headers=PLATFORM
            )
        )
        h = {"X-Tenant": slug}
        t = TenantObjects(slug, asn, peer, new_prefix=f"{net}.128/25")
        t.ids["asn_id"] = (
            await _ok(await client.post("/api/v1/asns", json={"asn": asn, "name": mark}, headers=h))
        )["id"]
        t.ids["neighbor_id"] = (
            await _ok(
                await client.post(
                    "/api/v1/neighbors",
                    json={"asn": 3356, "relationship": "upstream", "description": mark},
                    headers=h,
                )
            )
        )["id"]
        t.ids["session_id"] = (
            await _ok(
                await client.post(
                    "/api/v1/sessions",
                    json={
                        "local_asn": asn,
                        "peer_asn": 3356,
                        "peer_address": peer,
                        "interconnect": "pni",
                        "description": mark,
                    },
                    headers=h,
                )
            )
        )["id"]
        t.ids["prefix_id"] = (
            await _ok(
                await client.post(
                    "/api/v1/prefixes",
                    json={"prefix": f"{net}.0/25", "origin_asns": [asn], "description": mark},
                    headers=h,
                )
            )
        )["id"]
        t.ids["webhook_id"] = (
            await _ok(
                await client.post(
                    "/api/v1/webhooks",
                    json={"name": mark, "url": "https://1.1.1.1/bgpo"},
                    headers=h,
                )
            )
        )["id"]
        t.ids["key_id"] = (
            await _ok(await client.post("/api/v1/api-keys", json={"name": mark}, headers=h))
        )["id"]
        async with db.connection() as conn:
            tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
        await write(db, conflict(tenant_id, ConflictType.EXACT_HIJACK, f"{net}.0/25", 666))
        async with db.connection() as conn:
            t.ids["conflict_id"] = await conn.fetchval(
                "SELECT id FROM conflicts WHERE tenant_id = $1", tenant_id
            )
            event = await conn.fetchval(
                "SELECT id FROM conflict_events WHERE tenant_id = $1", tenant_id
            )
            t.ids["delivery_id"] = await conn.fetchval(
                "INSERT INTO webhook_deliveries (webhook_id, event_id, status) "
                "VALUES ($1, $2, 'failed') RETURNING id",
                t.ids["webhook_id"],
                event,
            )
            # An anomaly of the tenant's session (same peer ASN and address).
            t.ids["anomaly_id"] = await conn.fetchval(
                "INSERT INTO anomalies (metric, session, peer_asn, start_at, end_at, points, "
                "peak_at, score, actual, expected, lower_bound, upper_bound, direction, "
                "severity, engine, series_window) VALUES ('bgpo_session_updates', $1, 3356, "
                "now() - interval '1 hour', now(), 3, now(), 9.5, 100, 10, 5, 15, 'above', "
                "'high', 'test', $2) RETURNING id",
                f"rrc00|{peer}",
                '{"timestamps": [], "actual": [], "expected": [], "lower": [], "upper": []}',
            )
        objects[slug] = t
    callers = {
        "none": {},
        "viewer-a": await mint_key(db, settings, "tenant-a", "viewer"),
        "operator-a": await mint_key(db, settings, "tenant-a", "operator"),
        "admin-a": await mint_key(db, settings, "tenant-a", "admin"),
        "admin-b": await mint_key(db, settings, "tenant-b", "admin"),
        "platform": await mint_key(db, settings, None, "platform-admin"),
    }
    version = await _register_model(db)
    return World(objects["tenant-a"], objects["tenant-b"], callers, version)


async def _register_model(db: Database) -> int:
    async with db.connection() as conn:
        return int(
            await conn.fetchval(
                "INSERT INTO flap_models (features, metrics, data_from, data_to, training_rows, "
                "artifact_uri, onnx_max_diff) VALUES ('[]', '{}', now(), now(), 1, "
                "'file:///none', 0) RETURNING version"
            )
        )


def _fill(value: Any, t: TenantObjects) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, t) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, t) for v in value]
    if value == "{asn}":
        return t.asn
    if value == "{new_prefix}":
        return t.new_prefix
    if value == "{session_key}":
        return f"rrc00|{t.peer}"
    return value


def _url(path: str, world: World, target: TenantObjects) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "version":
            return str(world.model_version)
        if name == "slug":
            return target.slug
        return str(target.ids[name])

    return re.sub(r"\{(\w+)\}", one, path)


def expected(rule: Access, caller: str, own: bool, has_object: bool) -> set[int] | None:
    """The status the matrix demands (None: any answer but 401/403/404)."""
    if rule is Access.PUBLIC:
        return None
    if caller == "none":
        return {401}
    if rule is Access.PLATFORM_ADMIN:
        return None if caller == "platform" else {403}
    if rule is Access.READER and caller == "platform":
        return None
    role = Role.VIEWER if rule is Access.READER else Role(rule.value)
    if caller == "platform" or TENANT_RANK[ROLE_OF[caller]] < TENANT_RANK[role]:
        return {403}
    if has_object and not own:
        return {404}
    return None


@pytest.fixture(scope="module")
def matrix_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # One data directory for the module: the API-key secret (kept there) outlives a test.
    return Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("matrix"))


#: The world of the previous test, while no request changed it.
_CACHE: dict[str, World] = {}


async def world_for(api: httpx.AsyncClient, db: Database, settings: Settings) -> World:
    if "world" not in _CACHE:
        _CACHE["world"] = await build_world(api, db, settings)
    return _CACHE["world"]


@pytest.fixture
async def api(matrix_settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(matrix_settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


def _routes() -> list[tuple[str, str, Access]]:
    out = []
    for (method, path), rules in sorted(declared_rules().items()):
        assert len(rules) == 1, (method, path)
        if not path.startswith("/api/"):
            continue
        out.append((method, path, rules[0]))
    return out


def test_every_route_with_a_body_has_an_example() -> None:
    app = create_app(Settings(database_url="postgresql://spec-only@localhost/none"))
    missing = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route._effective_route, "dependant", None)
        if dependant is None or not dependant.body_params:
            continue
        for method in route.methods or ():
            if (method, route.path) not in BODIES:
                missing.append(f"{method} {route.path}")
    assert not missing, f"add a request body to BODIES for: {missing}"


@pytest.mark.parametrize(("method", "path", "rule"), _routes(), ids=str)
async def test_isolation_matrix(
    api: httpx.AsyncClient,
    db: Database,
    matrix_settings: Settings,
    method: str,
    path: str,
    rule: Access,
) -> None:
    settings = matrix_settings
    has_object = ("{" in path and "{version}" not in path) or path in BODY_OBJECTS
    world = await world_for(api, db, settings)
    failures = []
    # Callers that may change the object go last, each on a fresh world when needed.
    for caller in CALLERS:
        for own in (False, True):
            mine = world.tenant_of(caller) or world.a
            other = world.b if mine is world.a else world.a
            target = mine if own else other
            body = BODIES.get((method, path))
            kwargs: dict[str, Any] = {"headers": world.callers[caller]}
            if body is not None:
                kwargs["json"] = _fill(body, target if path in BODY_OBJECTS else mine)
            want = expected(rule, caller, own, has_object)
            if path in STREAMS:
                # An allowed caller's stream never ends (the ASGI transport would wait for
                # it): test_conflicts_api reads it over a real server; here only refusals.
                if want is None:
                    continue
                r = await api.request(method, _url(path, world, target), **kwargs)
                status, text = r.status_code, r.text
            else:
                r = await api.request(method, _url(path, world, target), **kwargs)
                status, text = r.status_code, r.text
            if want is None:
                bad = status in (401, 403) or (status == 404 and has_object and own)
                if status == 503 and path not in NO_SERVICES:
                    bad = True
            else:
                bad = status not in want
            if caller.endswith("-a") and MARK_B in text:
                bad = True
                text = f"LEAKS TENANT B: {text}"
            if bad:
                failures.append(
                    f"{caller:10} {'own' if own else 'other':5} -> {status} "
                    f"(want {sorted(want) if want else 'allowed'}): {text[:200]}"
                )
            if method != "GET" and status < 300:
                world = _CACHE["world"] = await build_world(api, db, settings)
    assert not failures, f"{method} {path} [{rule}]:\n" + "\n".join(failures)
