"""Webhook signing secrets and signatures (the Standard Webhooks scheme).

Each webhook has its own secret, ``whsec_`` + base64 of 32 random bytes, shown
to the tenant once. Deliveries must sign with it, so it cannot be hashed like a
password: it is stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under a key
that lives outside the database (``BGPO_WEBHOOK_SECRET_KEYS``, from a Kubernetes
Secret in production; a file in the data directory in development). A database
dump alone therefore reveals no secret. Several comma-separated keys rotate:
the first encrypts, all decrypt.

Every delivery carries ``webhook-id`` (the delivery id, the same on retries),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64
HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``, so receivers can verify it
with any Standard Webhooks library or a few lines of code (see README).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as random
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
#: The development key file, under the data directory.
DEV_KEY_FILE = "webhook-secret.key"


def new_secret() -> str:
    """A fresh signing secret, from the operating system's secure random source."""
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(32)).decode("ascii")


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


class SecretBox:
    """Encrypts signing secrets for storage and decrypts them for delivery."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigurationError(
                "webhook-secret-key-missing", "no key to encrypt webhook secrets with"
            )
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ConfigurationError(
                "webhook-secret-key-invalid",
                "BGPO_WEBHOOK_SECRET_KEYS must be comma-separated Fernet keys (32 url-safe "
                "base64 bytes each: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')",
                "webhook_secret_keys",
            ) from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise ConfigurationError(
                "webhook-secret-undecryptable",
                "a webhook's signing secret was encrypted with a key that is no longer in "
                "BGPO_WEBHOOK_SECRET_KEYS; add the old key back (after the new one) or "
                "rotate the webhook's secret",
                "webhook_secret_keys",
            ) from None


def _development_key(data_dir: Path) -> bytes:
    """The key file's key, created on first use. The API and the dispatcher may start
    together: the file appears complete or not at all (written aside, then linked into
    place, which fails if another process was first; then its key is used)."""
    path = data_dir / DEV_KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    aside = data_dir / f".{DEV_KEY_FILE}.{os.getpid()}.{random.token_hex(4)}"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(aside, path)
    except FileExistsError:
        return path.read_bytes().strip()
    finally:
        aside.unlink()
    return key


def secret_box(settings: Settings) -> SecretBox:
    """The configured keys; in development without them, a key kept in the data directory
    (created on first use, mode 0600). Production without keys is refused."""
    if settings.webhook_secret_keys is not None:
        keys = [k.strip() for k in settings.webhook_secret_keys.get_secret_value().split(",")]
        return SecretBox([k for k in keys if k])
    if not settings.development:
        raise ConfigurationError(
            "webhook-secret-key-missing",
            "production needs BGPO_WEBHOOK_SECRET_KEYS (a Fernet key from a Secret) to "
            "store webhook signing secrets",
            "webhook_secret_keys",
        )
    return SecretBox([_development_key(settings.data_dir)])
