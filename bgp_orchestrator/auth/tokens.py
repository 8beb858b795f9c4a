"""Validation of OIDC bearer tokens (Keycloak's, or the embedded provider's) with joserfc.

A token is accepted only when its signature verifies with one of the issuer's keys under
an allowed algorithm (never ``none`` or a shared-secret HS* algorithm), and its ``iss``,
``aud``, ``exp`` and ``nbf`` hold. Roles and the tenant slug are read from the claims
the settings name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet

from bgp_orchestrator.auth.jwks import JwksCache
from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.errors import ConfigurationError, Unauthorized

#: Algorithms a bearer token may never use, whatever the settings say.
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
#: Clock skew tolerated on exp / nbf / iat.
LEEWAY_S = 30


@dataclass(frozen=True)
class TokenIdentity:
    """What a valid token says about its bearer (the tenant still as a slug)."""

    subject: str
    tenant_slug: str | None
    roles: frozenset[Role]
    claims: dict[str, Any]


def claim_at(claims: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted claim path (``realm_access.roles``), or None."""
    node: Any = claims
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def roles_from(value: Any) -> frozenset[Role]:
    """The known roles in a claim value (a list, or one string); others are ignored."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return frozenset()
    known = {r.value: r for r in Role}
    return frozenset(known[v] for v in value if isinstance(v, str) and v in known)


def _refused(code: str, message: str) -> Unauthorized:
    return Unauthorized(code, message, "Authorization")


class TokenValidator:
    def __init__(
        self,
        issuer: str,
        audience: str,
        algorithms: list[str],
        roles_claim: str,
        tenant_claim: str,
        jwks: JwksCache,
    ) -> None:
        bad = FORBIDDEN_ALGORITHMS.intersection(algorithms)
        if bad or not algorithms:
            raise ConfigurationError(
                "unsafe-token-algorithms",
                "BGPO_OIDC_ALGORITHMS must list asymmetric signature algorithms "
                f"(RS256, ES256, ...); refusing {sorted(bad) or 'an empty list'}",
                "BGPO_OIDC_ALGORITHMS",
                algorithms,
            )
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.algorithms = list(algorithms)
        self.roles_claim = roles_claim
        self.tenant_claim = tenant_claim
        self.jwks = jwks
        self._claims = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def _verify(self, token: str, keys: KeySet, kid: str | None) -> jwt.Token:
        """Verify with the key the kid names, or (no kid) with any key of the set."""
        if kid is not None or len(keys.keys) <= 1:
            return jwt.decode(token, keys, algorithms=self.algorithms)
        for key in keys.keys:
            try:
                return jwt.decode(token, key, algorithms=self.algorithms)
            except BadSignatureError:
                continue
        raise BadSignatureError()

    async def validate(self, token: str) -> TokenIdentity:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise _refused("invalid-token", "the bearer token is not a signed JWT") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise _refused(
                "token-algorithm-refused",
                f"tokens signed with {alg!r} are not accepted "
                f"(allowed: {', '.join(self.algorithms)})",
            )
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        keys = await self.jwks.keys(kid)
        try:
            try:
                decoded = self._verify(token, keys, kid)
            except BadSignatureError:
                if kid is not None:
                    raise
                # No kid names the key: after a rotation only a fresh JWKS can tell.
                fresh = await self.jwks.refresh()
                if fresh is None:
                    raise
                decoded = self._verify(token, fresh, kid)
        except InvalidKeyIdError as exc:
            raise _refused(
                "unknown-signing-key", "the token was signed with a key the issuer does not have"
            ) from exc
        except BadSignatureError as exc:
            raise _refused("bad-token-signature", "the token's signature does not verify") from exc
        except JoseError as exc:
            raise _refused("invalid-token", f"the bearer token is not valid: {exc}") from exc
        claims = decoded.claims
        try:
            self._claims.validate(claims)
        except ExpiredTokenError as exc:
            raise _refused("token-expired", "the token has expired; obtain a new one") from exc
        except ClaimError as exc:
            raise _refused("invalid-token-claims", f"the token is not for this API: {exc}") from exc
        nbf = claims.get("nbf")
        if nbf is not None and not isinstance(nbf, int | float):
            raise _refused("invalid-token-claims", "the token's nbf claim is not a number")
        tenant = claim_at(claims, self.tenant_claim)
        return TokenIdentity(
            subject=str(claims["sub"]),
            tenant_slug=tenant if isinstance(tenant, str) and tenant else None,
            roles=roles_from(claim_at(claims, self.roles_claim)),
            claims=claims,
        )
