"""Bearer-token validation against locally signed tokens and a JWKS that rotates."""

from __future__ import annotations

import time

import pytest

from bgp_orchestrator.auth.jwks import JwksCache
from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.auth.tokens import TokenValidator, claim_at, roles_from
from bgp_orchestrator.errors import ConfigurationError, Unauthorized
from tests.auth_helpers import AUDIENCE, ISSUER, LocalIssuer, hs256, unsigned


def validator(issuer: LocalIssuer, min_refetch_s: float = 0.0) -> TokenValidator:
    jwks = JwksCache(ISSUER, ttl_s=300, min_refetch_s=min_refetch_s, transport=issuer.transport())
    return TokenValidator(
        ISSUER, AUDIENCE, ["RS256", "ES256"], "realm_access.roles", "tenant", jwks
    )


@pytest.fixture
def issuer() -> LocalIssuer:
    return LocalIssuer()


async def test_a_valid_token_gives_subject_tenant_and_roles(issuer: LocalIssuer) -> None:
    identity = await validator(issuer).validate(issuer.token())
    assert identity.subject == "alice"
    assert identity.tenant_slug == "acme"
    assert identity.roles == {Role.OPERATOR}


async def test_audience_may_be_a_list(issuer: LocalIssuer) -> None:
    token = issuer.token(aud=["account", AUDIENCE])
    assert (await validator(issuer).validate(token)).subject == "alice"


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        # times relative to when the test runs, not to when pytest collected it (a long
        # suite runs this minutes after collection)
        ({"exp": -120}, "token-expired"),
        ({"nbf": 600}, "invalid-token-claims"),
        ({"aud": "some-other-client"}, "invalid-token-claims"),
        ({"iss": "https://evil.test/realms/bgpo"}, "invalid-token-claims"),
        ({"exp": None}, "invalid-token-claims"),
        ({"sub": None}, "invalid-token-claims"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "no-exp", "no-sub"],
)
async def test_bad_claims_are_refused(
    issuer: LocalIssuer, overrides: dict[str, object], code: str
) -> None:
    overrides = {
        k: _now() + v if k in ("exp", "nbf") and isinstance(v, int) else v
        for k, v in overrides.items()
    }
    with pytest.raises(Unauthorized) as err:
        await validator(issuer).validate(issuer.token(**overrides))
    assert err.value.code == code


async def test_forged_signature_is_refused(issuer: LocalIssuer) -> None:
    header, _payload, signature = issuer.token().split(".")
    other = LocalIssuer().token(realm_access={"roles": ["platform-admin"]})
    forged = f"{header}.{other.split('.')[1]}.{signature}"
    with pytest.raises(Unauthorized) as err:
        await validator(issuer).validate(forged)
    assert err.value.code == "bad-token-signature"


async def test_a_key_the_issuer_never_published_is_refused(issuer: LocalIssuer) -> None:
    stranger = LocalIssuer()
    with pytest.raises(Unauthorized) as err:
        await validator(issuer).validate(stranger.token())
    assert err.value.code == "unknown-signing-key"


async def test_alg_none_and_shared_secret_algorithms_are_refused(issuer: LocalIssuer) -> None:
    v = validator(issuer)
    with pytest.raises(Unauthorized) as err:
        await v.validate(unsigned(issuer.claims()))
    assert err.value.code == "token-algorithm-refused"
    # The classic confusion: HS256 "signed" with the issuer's public key as the secret.
    public = issuer.key.as_pem(private=False)
    with pytest.raises(Unauthorized) as err:
        await v.validate(hs256(issuer.claims(), public))
    assert err.value.code == "token-algorithm-refused"
    for garbage in ("", "not-a-jwt", "a.b.c", "e30.e30.e30"):
        with pytest.raises(Unauthorized):
            await v.validate(garbage)


def test_settings_cannot_allow_none_or_hs256() -> None:
    for algorithms in (["none"], ["RS256", "HS256"], []):
        with pytest.raises(ConfigurationError):
            TokenValidator(ISSUER, AUDIENCE, algorithms, "roles", "tenant", JwksCache(ISSUER))


async def test_rotation_refetches_on_unknown_kid_and_refuses_the_rotated_out_key(
    issuer: LocalIssuer,
) -> None:
    v = validator(issuer)
    before = issuer.token()
    assert (await v.validate(before)).subject == "alice"
    assert issuer.jwks_requests == 1
    old = issuer.rotate()
    # A token of the new key: its kid is unknown to the cache, which is fetched again.
    assert (await v.validate(issuer.token(sub="bob"))).subject == "bob"
    assert issuer.jwks_requests == 2
    # The key that was rotated out is gone from the JWKS: its tokens are refused.
    with pytest.raises(Unauthorized) as err:
        await v.validate(issuer.token(key=old))
    assert err.value.code == "unknown-signing-key"


async def test_unknown_kids_do_not_hammer_the_issuer(issuer: LocalIssuer) -> None:
    v = validator(issuer, min_refetch_s=60)
    await v.validate(issuer.token())
    stranger = LocalIssuer()
    for _ in range(20):
        with pytest.raises(Unauthorized):
            await v.validate(stranger.token())
    assert issuer.jwks_requests == 1


def test_claim_paths_and_roles() -> None:
    claims = {"realm_access": {"roles": ["viewer", "offline_access", "admin"]}, "t": "x"}
    assert roles_from(claim_at(claims, "realm_access.roles")) == {Role.VIEWER, Role.ADMIN}
    assert claim_at(claims, "realm_access.missing") is None
    assert claim_at(claims, "t.deeper") is None
    assert roles_from("platform-admin") == {Role.PLATFORM_ADMIN}
    assert roles_from(42) == frozenset()
