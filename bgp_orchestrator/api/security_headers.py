"""Security headers on every response: CSP with frame-ancestors, nosniff, referrer
policy, and HSTS on requests that arrived over TLS.

TLS is detected from the connection (``scope["scheme"] == "https"``) or, behind a
reverse proxy that terminates TLS, from ``X-Forwarded-Proto: https`` sent by a
peer inside ``trusted_proxies`` (a client cannot claim TLS by sending the
header itself).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: JSON answers: nothing may load, nothing may frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: FastAPI's Swagger UI and ReDoc pages load their scripts and styles from jsDelivr.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
API_POLICIES: tuple[tuple[str, str], ...] = (("/docs", DOCS_CSP), ("/redoc", DOCS_CSP))


class SecurityHeadersMiddleware:
    """``csp_by_prefix``: (path prefix, policy) pairs, first match wins, else
    ``default_csp``; ``trusted_proxies``: networks whose X-Forwarded-Proto is believed."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_csp: str = API_CSP,
        csp_by_prefix: Sequence[tuple[str, str]] = API_POLICIES,
        trusted_proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        hsts_max_age_s: int = 31536000,
    ) -> None:
        self.app = app
        self.default_csp = default_csp
        self.csp_by_prefix = tuple(csp_by_prefix)
        self.trusted_proxies = tuple(trusted_proxies)
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains" if hsts_max_age_s else ""

    def _csp(self, path: str) -> str:
        for prefix, policy in self.csp_by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return policy
        return self.default_csp

    def _over_tls(self, scope: Scope) -> bool:
        if scope.get("scheme") in ("https", "wss"):
            return True
        client = scope.get("client")
        if not client or not self.trusted_proxies:
            return False
        try:
            peer = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        if not any(peer in net for net in self.trusted_proxies):
            return False
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-proto":
                # The proxy nearest to us appends last.
                proto: str = value.decode("latin-1").split(",")[-1].strip().lower()
                return proto == "https"
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self._csp(scope.get("path", ""))
        hsts = self.hsts if self._over_tls(scope) else ""

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                if hsts:
                    headers.setdefault("Strict-Transport-Security", hsts)
            await send(message)

        await self.app(scope, receive, with_headers)
