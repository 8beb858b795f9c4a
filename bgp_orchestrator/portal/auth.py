"""Who is signed in to the portal: the OIDC client, the session's user, the CSRF check.

Login is the authorization-code flow with PKCE (S256) through authlib's
Starlette client; the state, nonce and code verifier live in the server-side
session until the provider redirects back. The user's tenant and roles come
from the ID token's claims named in the settings (``BGPO_OIDC_TENANT_CLAIM``,
``BGPO_OIDC_ROLES_CLAIM``), like the API's bearer tokens.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authlib.integrations.starlette_client import OAuth
from starlette.requests import Request

from bgp_orchestrator.auth.principal import Principal, Role
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.local import oidc
from bgp_orchestrator.settings import Settings

USER_KEY = "user"


def issuer_url(settings: Settings) -> str:
    """The configured issuer, or the embedded provider `bgpo up` starts in development."""
    found = oidc.issuer(settings)
    if found is None:
        raise ConfigurationError(
            "oidc-issuer-missing", "production needs BGPO_OIDC_ISSUER (the Keycloak realm URL)"
        )
    return found


def session_secret(settings: Settings) -> str:
    """``BGPO_PORTAL_SESSION_SECRET``; in development one generated once into data_dir."""
    if settings.portal_session_secret is not None:
        value = settings.portal_session_secret.get_secret_value()
        if len(value) < 32:
            raise ConfigurationError(
                "portal-session-secret-weak",
                "BGPO_PORTAL_SESSION_SECRET must be at least 32 characters",
                "portal_session_secret",
            )
        return value
    if not settings.development:
        raise ConfigurationError(
            "portal-session-secret-missing", "production needs BGPO_PORTAL_SESSION_SECRET"
        )
    path = Path(settings.data_dir) / "portal_session_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def oauth_client(settings: Settings) -> Any:
    """The registered OIDC client (``oauth.bgpo``)."""
    secret = settings.portal_client_secret
    if secret is None and not settings.development:
        raise ConfigurationError(
            "portal-client-secret-missing",
            "production needs BGPO_PORTAL_CLIENT_SECRET (the portal client's secret in Keycloak)",
        )
    oauth = OAuth()
    kwargs: dict[str, Any] = {"scope": "openid email profile", "code_challenge_method": "S256"}
    client_secret = secret.get_secret_value() if secret is not None else None
    if client_secret is None and oidc.talks_to_embedded_provider(settings):
        # The embedded provider takes any secret but insists on one; it guards nothing.
        client_secret = "embedded-provider"  # noqa: S105
    elif client_secret is None:
        kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 - public client: PKCE only
    oauth.register(
        "bgpo",
        client_id=settings.portal_client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer_url(settings)}/.well-known/openid-configuration",
        client_kwargs=kwargs,
    )
    return oauth.bgpo


def claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def roles_of(claims: dict[str, Any], path: str) -> list[str]:
    found = claim(claims, path)
    known = {r.value for r in Role}
    return sorted(r for r in (found if isinstance(found, list) else []) if r in known)


@dataclass(frozen=True)
class PortalUser:
    subject: str
    name: str
    email: str
    tenant_id: int
    tenant_slug: str
    tenant_name: str
    roles: tuple[str, ...]

    @property
    def principal(self) -> Principal:
        return Principal(
            self.subject, self.tenant_id, frozenset(Role(r) for r in self.roles), "token"
        )

    def may(self, role: Role) -> bool:
        return self.principal.at_least(role) or self.principal.platform_admin


def user_of(request: Request) -> PortalUser | None:
    data = request.session.get(USER_KEY)
    if not data:
        return None
    return PortalUser(**{**data, "roles": tuple(data["roles"])})
