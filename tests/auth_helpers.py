"""A local token issuer for tests: RSA/EC keys, a JWKS document, and signed tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

ISSUER = "https://sso.test/realms/bgpo"
AUDIENCE = "bgpo-api"


class LocalIssuer:
    """Signs tokens with keys it publishes at ``/jwks`` (rotate() swaps them)."""

    def __init__(self, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.key = RSAKey.generate_key(2048, auto_kid=True)
        self.published: list[Any] = [self.key]
        self.jwks_requests = 0

    def rotate(self) -> RSAKey:
        """A new signing key replaces the old one in the JWKS; returns the old key."""
        old = self.key
        self.key = RSAKey.generate_key(2048, auto_kid=True)
        self.published = [self.key]
        return old

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenant": "acme",
            "realm_access": {"roles": ["operator"]},
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: Any = None, alg: str = "RS256", **overrides: Any) -> str:
        key = key or self.key
        header = {"alg": alg, "kid": key.kid}
        return jwt.encode(header, self.claims(**overrides), key, algorithms=[alg])

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/.well-known/openid-configuration"):
                return httpx.Response(
                    200, json={"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}
                )
            if request.url.path.endswith("/jwks"):
                self.jwks_requests += 1
                return httpx.Response(200, json=KeySet(self.published).as_dict(private=False))
            return httpx.Response(404)

        return httpx.MockTransport(handle)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _part(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj).encode())


def unsigned(claims: dict[str, Any]) -> str:
    """A token with ``alg: none`` (no signature)."""
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."


def hs256(claims: dict[str, Any], secret: bytes) -> str:
    """A token "signed" with HS256 under ``secret`` (built by hand: JOSE libraries refuse
    a public key as an HMAC secret, which is the attack this imitates)."""
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT'})}.{_part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def es256_key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)
