"""Every route of the API declares exactly one access rule (a new route without one fails)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from bgp_orchestrator.api.access import DOCUMENTATION_PATHS, Access, rule_of
from bgp_orchestrator.api.app import create_app
from bgp_orchestrator.settings import Settings


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def declared_rules() -> dict[tuple[str, str], list[Access]]:
    """(method, path) -> the access rules its dependencies declare, for every route."""
    app = create_app(Settings(database_url="postgresql://spec-only@localhost/none"))
    out: dict[tuple[str, str], list[Access]] = {}
    for route in iter_route_contexts(app.routes):
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        dependant = getattr(route._effective_route, "dependant", None)
        if dependant is None:
            rules = [Access.PUBLIC] if route.path in DOCUMENTATION_PATHS else []
        else:
            rules = [r for r in map(rule_of, _calls(dependant)) if r is not None]
        for method in methods:
            out[(method, str(route.path))] = rules
    return out


def test_every_route_declares_exactly_one_rule() -> None:
    rules = declared_rules()
    assert len(rules) > 40
    missing = [f"{m} {p}" for (m, p), r in rules.items() if len(r) != 1]
    assert not missing, f"routes without exactly one access rule: {missing}"


def test_platform_wide_actions_need_the_platform_admin() -> None:
    rules = declared_rules()
    for key in [
        ("POST", "/api/v1/tenants"),
        ("GET", "/api/v1/tenants"),
        ("DELETE", "/api/v1/tenants/{slug}"),
        ("POST", "/api/v1/ml/models/{version}/activate"),
        ("POST", "/api/v1/features/materialize"),
        ("POST", "/api/v1/anomalies/detect"),
    ]:
        assert rules[key] == [Access.PLATFORM_ADMIN], key


def test_only_health_and_documentation_are_public() -> None:
    public = sorted(p for (_, p), r in declared_rules().items() if r == [Access.PUBLIC])
    assert public == sorted({"/healthz", "/readyz", "/metrics"} | set(DOCUMENTATION_PATHS))


def test_flap_reads_are_for_a_tenant_viewer_or_the_platform_admin() -> None:
    rules = declared_rules()
    for key in [("POST", "/api/v1/ml/predict"), ("POST", "/api/v1/features/serve")]:
        assert rules[key] == [Access.READER], key


def test_the_reader_rule() -> None:
    import pytest

    from bgp_orchestrator.api.access import check
    from bgp_orchestrator.auth.principal import Principal, Role
    from bgp_orchestrator.errors import Forbidden, Unauthorized
    from bgp_orchestrator.flaps.ownership import peer_address

    platform = Principal("p", None, frozenset({Role.PLATFORM_ADMIN}), "api_key")
    viewer = Principal("v", 1, frozenset({Role.VIEWER}), "api_key")
    nobody = Principal("n", 1, frozenset(), "token")
    assert check(Access.READER, platform) is platform
    assert check(Access.READER, viewer) is viewer
    with pytest.raises(Forbidden, match="viewer role"):
        check(Access.READER, nobody)
    with pytest.raises(Unauthorized):
        check(Access.READER, None)
    with pytest.raises(Forbidden):
        check(Access.VIEWER, platform)  # other tenant routes still refuse it
    assert peer_address("rrc00|2001:DB8::A") == "2001:db8::a"
    assert peer_address("exabgp|192.0.2.1") == "192.0.2.1"
    for bad in ("192.0.2.1", "|192.0.2.1", "rrc00|nothing", "rrc00|fe80::1%eth0", "a|b|c"):
        assert peer_address(bad) is None, bad
