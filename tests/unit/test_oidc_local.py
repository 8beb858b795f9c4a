"""The embedded OIDC provider's configuration (its process runs in the integration tests)."""

from __future__ import annotations

import json
from pathlib import Path

from bgp_orchestrator.local.oidc import (
    DEMO_USERS,
    EmbeddedOIDC,
    embedded_oidc_wanted,
    issuer,
    talks_to_embedded_provider,
)
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack.lifecycle import identity_env


def test_development_uses_the_embedded_issuer_unless_one_is_configured(tmp_path: Path) -> None:
    dev = Settings(data_dir=tmp_path, embedded_oidc_port=18480)
    assert issuer(dev) == "http://127.0.0.1:18480" and embedded_oidc_wanted(dev)
    assert identity_env(dev) == {"BGPO_OIDC_ISSUER": "http://127.0.0.1:18480"}
    sso = Settings(data_dir=tmp_path, oidc_issuer="https://sso.example.net/realms/bgpo/")
    assert issuer(sso) == "https://sso.example.net/realms/bgpo"
    assert not embedded_oidc_wanted(sso)
    assert not talks_to_embedded_provider(sso)


def test_a_serve_replica_knows_its_issuer_is_the_embedded_provider(tmp_path: Path) -> None:
    """`up` hands the replicas the embedded issuer as BGPO_OIDC_ISSUER; the portal must still
    send the client secret the embedded provider insists on (a public client is refused)."""
    dev = Settings(data_dir=tmp_path, embedded_oidc_port=18480)
    given = identity_env(dev)["BGPO_OIDC_ISSUER"]
    replica = Settings(data_dir=tmp_path, embedded_oidc_port=18480, oidc_issuer=given)
    assert not embedded_oidc_wanted(replica)  # the replica starts nothing
    assert talks_to_embedded_provider(replica) and talks_to_embedded_provider(dev)


def test_demo_users_carry_roles_and_tenant_under_the_configured_claims(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, oidc_roles_claim="resource.bgpo.roles", oidc_tenant_claim="org"
    )
    argv = EmbeddedOIDC(settings).argv()
    users = [json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "--user-claims"]
    assert [u["sub"] for u in users] == [u.sub for u in DEMO_USERS]
    admin = users[0]
    assert admin["resource"]["bgpo"]["roles"] == ["admin"] and admin["org"] == "demo"
    platform = users[-1]
    assert platform["resource"]["bgpo"]["roles"] == ["platform-admin"] and "org" not in platform
    assert "127.0.0.1" in argv
