"""Server-side browser sessions: data in PostgreSQL, a signed random id in the cookie.

The cookie holds only ``<id>.<signature>`` (itsdangerous, keyed with
``portal_session_secret``), HttpOnly, SameSite=Lax (the OIDC provider redirects
back with a top-level GET), Secure when the portal is reached over https. The
table keys rows by the SHA-256 of the id, so a database dump holds no usable
cookie. The data dict is exposed as ``scope["session"]`` (what Starlette's and
authlib's code expect of ``request.session``) and written back only when it
changed; :func:`rotate` gives a session a new id at login (no fixation).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, Signer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bgp_orchestrator.storage.database import Database

COOKIE = "bgpo_portal"
#: Key in the session data of the anti-CSRF token every form carries.
CSRF_KEY = "csrf"
_ROTATE = "__rotate__"


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class SessionStore:
    def __init__(self, db: Database, max_age_s: int) -> None:
        self.db = db
        self.max_age_s = max_age_s

    async def load(self, session_id: str) -> dict[str, Any] | None:
        async with self.db.connection() as conn:
            raw = await conn.fetchval(
                "SELECT data FROM portal_sessions WHERE id_hash = $1 AND expires_at > now()",
                _hash(session_id),
            )
        return json.loads(raw) if raw is not None else None

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=self.max_age_s)
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO portal_sessions (id_hash, data, expires_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (id_hash) DO UPDATE SET data = EXCLUDED.data, "
                "expires_at = EXCLUDED.expires_at",
                _hash(session_id),
                json.dumps(data),
                expires,
            )

    async def delete(self, session_id: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM portal_sessions WHERE id_hash = $1", _hash(session_id))

    async def purge_expired(self) -> int:
        async with self.db.connection() as conn:
            status = await conn.execute("DELETE FROM portal_sessions WHERE expires_at <= now()")
        return int(status.split()[-1])


def rotate(session: dict[str, Any]) -> None:
    """Ask for a new session id when this response is sent (after a login)."""
    session[_ROTATE] = True


class ServerSessionMiddleware:
    """Pure ASGI: loads ``scope["session"]`` from the store, saves it when it changed."""

    def __init__(
        self, app: ASGIApp, store_of: Any, secret: str, max_age_s: int, path: str = "/"
    ) -> None:
        self.app = app
        self.store_of = store_of  # a callable returning the SessionStore (opened in lifespan)
        self.signer = Signer(secret, salt="bgpo-portal-session")
        self.max_age_s = max_age_s
        self.path = path

    def _session_id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self.signer.unsign(cookie).decode()
        except BadSignature:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        store: SessionStore = self.store_of()
        connection = HTTPConnection(scope)
        session_id = self._session_id(connection.cookies.get(COOKIE))
        data = (await store.load(session_id)) if session_id else None
        fresh = data is None
        scope["session"] = dict(data or {})
        before = json.dumps(data or {}, sort_keys=True)
        secure = connection.url.scheme == "https"
        path = scope.get("root_path") or self.path

        async def send_wrapper(message: Message) -> None:
            nonlocal session_id
            if message["type"] == "http.response.start":
                session: dict[str, Any] = scope["session"]
                headers = MutableHeaders(scope=message)
                rotate_now = session.pop(_ROTATE, False)
                if not session:
                    if session_id and not fresh:
                        await store.delete(session_id)
                        headers.append("Set-Cookie", _cookie("", 0, path, secure))
                elif rotate_now or fresh or json.dumps(session, sort_keys=True) != before:
                    if rotate_now and session_id:
                        await store.delete(session_id)
                    if rotate_now or fresh or session_id is None:
                        session_id = secrets.token_urlsafe(32)
                    await store.save(session_id, session)
                    value = self.signer.sign(session_id).decode()
                    headers.append("Set-Cookie", _cookie(value, self.max_age_s, path, secure))
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _cookie(value: str, max_age: int, path: str, secure: bool) -> str:
    parts = [f"{COOKIE}={value}", f"Path={path or '/'}", f"Max-Age={max_age}", "HttpOnly"]
    parts.append("SameSite=Lax")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's anti-CSRF token (created on first use)."""
    token = session.get(CSRF_KEY)
    if not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return str(token)


def csrf_valid(session: dict[str, Any], submitted: str | None) -> bool:
    expected = session.get(CSRF_KEY)
    return bool(expected and submitted) and secrets.compare_digest(str(expected), str(submitted))
