"""Ray token authentication: the local head runs with it, and our clients send the token.

Ray 2.60 protects the dashboard, job and Serve REST APIs with a bearer token
when ``RAY_AUTH_MODE=token``. The token is found where Ray's own CLI and SDK
look for it: ``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, or
``~/.ray/auth_token``, so `ray job submit` works against the stack unchanged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def token_path() -> Path:
    configured = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(configured) if configured else Path.home() / ".ray" / "auth_token"


def token() -> str | None:
    direct = os.environ.get("RAY_AUTH_TOKEN")
    if direct:
        return direct.strip()
    try:
        return token_path().read_text().strip() or None
    except OSError:
        return None


def ensure_token() -> str:
    """The token, generated (64 hex characters, file mode 0600) when there is none."""
    existing = token()
    if existing:
        return existing
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def headers() -> dict[str, str]:
    value = token()
    return {"Authorization": f"Bearer {value}"} if value else {}
