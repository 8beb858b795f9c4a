"""The embedded OIDC provider `bgpo up` starts in development (PyPI ``oidc-provider-mock``).

It is a real OpenID Connect provider in its own process: discovery document, JWKS,
authorization-code flow (PKCE included, through authlib), ID tokens signed with RS256,
userinfo and RP-initiated logout. It keeps everything in memory, so its signing key and
sessions are new on every start (tokens issued before a restart are refused afterwards:
the key they were signed with is gone).

Clients: the provider accepts any ``client_id`` and secret without registration, so the
portal (``BGPO_PORTAL_CLIENT_ID``) and the API (``BGPO_OIDC_AUDIENCE``) need none; the
``aud`` of an ID token is the client id that asked for it.

Users: the demo users below are predefined (one click on the provider's login page, no
password) and carry the same claims a Keycloak realm export gives (``realm_access.roles``
and the tenant slug), under the claim names the settings choose.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.local.daemon import HOST, DaemonService
from bgp_orchestrator.settings import Settings

#: The tenant the demo users belong to; `up` creates it in development.
DEMO_TENANT = "demo"


@dataclass(frozen=True)
class DemoUser:
    sub: str
    name: str
    roles: tuple[Role, ...]
    tenant: str | None = DEMO_TENANT
    extra: dict[str, Any] = field(default_factory=dict)

    def claims(self, settings: Settings) -> dict[str, Any]:
        """The user's claims, with roles and tenant under the claims the settings name."""
        claims: dict[str, Any] = {
            "sub": self.sub,
            "email": self.sub,
            "name": self.name,
            "preferred_username": self.sub.split("@")[0],
            **self.extra,
        }
        _set_path(claims, settings.oidc_roles_claim, [str(r) for r in self.roles])
        if self.tenant is not None:
            _set_path(claims, settings.oidc_tenant_claim, self.tenant)
        return claims


#: Printed by `up`; the first one is the demo login.
DEMO_USERS = (
    DemoUser("admin@demo.example", "Demo Admin", (Role.ADMIN,)),
    DemoUser("operator@demo.example", "Demo Operator", (Role.OPERATOR,)),
    DemoUser("viewer@demo.example", "Demo Viewer", (Role.VIEWER,)),
    DemoUser("platform@bgpo.example", "Platform Admin", (Role.PLATFORM_ADMIN,), tenant=None),
)


def _set_path(claims: dict[str, Any], dotted: str, value: Any) -> None:
    """Put ``value`` at a dotted claim path (``realm_access.roles``), creating objects."""
    *parents, last = dotted.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def embedded_issuer(settings: Settings) -> str:
    """The issuer URL of the embedded provider (it names itself after the Host it is
    reached by, so every client must use this exact address)."""
    return f"http://{HOST}:{settings.embedded_oidc_port}"


def issuer(settings: Settings) -> str | None:
    """The effective issuer: the configured one, else the embedded one in development."""
    if settings.oidc_issuer:
        return settings.oidc_issuer.rstrip("/")
    if settings.development:
        return embedded_issuer(settings)
    return None


def embedded_oidc_wanted(settings: Settings) -> bool:
    """Whether `up` must start the embedded provider (development, no issuer configured)."""
    return settings.development and not settings.oidc_issuer


def talks_to_embedded_provider(settings: Settings) -> bool:
    """Whether the effective issuer is the embedded provider. Unlike
    :func:`embedded_oidc_wanted` this also holds in the Serve replicas, to which `up`
    hands the embedded issuer explicitly as ``BGPO_OIDC_ISSUER``."""
    return settings.development and issuer(settings) == embedded_issuer(settings)


class EmbeddedOIDC(DaemonService):
    """``python -m oidc_provider_mock`` on loopback, with the demo users predefined."""

    name = "oidc"
    title = "OIDC provider (embedded, oidc-provider-mock)"
    port_setting = "BGPO_EMBEDDED_OIDC_PORT"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.embedded_oidc_port)
        self.settings = settings

    @property
    def url(self) -> str:
        return embedded_issuer(self.settings)

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "oidc_provider_mock",
            "--host", HOST,
            "--port", str(self.port),
            "--token-max-age", "3600",
        ]  # fmt: skip
        for user in DEMO_USERS:
            argv += ["--user-claims", json.dumps(user.claims(self.settings))]
        return argv

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "demo login": f"{DEMO_USERS[0].sub} (no password: pick the user on the login page)",
        }


def login(
    issuer_url: str,
    sub: str,
    client_id: str,
    redirect_uri: str = "http://127.0.0.1/callback",
    scope: str = "openid profile email",
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Run the authorization-code flow against the embedded provider as ``sub`` the way a
    browser would (without following the redirect) and return the token response
    (``id_token``, ``access_token``, ...). For tests and the CLI's development helpers."""
    with httpx.Client(base_url=issuer_url, timeout=timeout_s) as client:
        authorize = client.post(
            "/oauth2/authorize",
            params={
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": scope,
            },
            data={"sub": sub},
        )
        location = authorize.headers.get("location", "")
        codes = parse_qs(urlsplit(location).query).get("code")
        if authorize.status_code != 302 or not codes:
            raise ServiceUnavailable(
                "oidc-login-failed",
                f"the OIDC provider at {issuer_url} gave no authorization code "
                f"(HTTP {authorize.status_code})",
            )
        token = client.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": codes[0],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": "unused",  # the provider accepts any secret
            },
        )
        if token.status_code != 200:
            raise ServiceUnavailable(
                "oidc-login-failed",
                f"the OIDC provider at {issuer_url} refused the code (HTTP {token.status_code})",
            )
        body: dict[str, Any] = token.json()
        return body
