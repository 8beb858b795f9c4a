"""Alert preferences of a tenant, kept as the webhooks the alert dispatcher delivers to.

The portal's form has an e-mail address, a generic webhook URL and a Slack
incoming-webhook URL, a minimum severity and the conflict types of interest.
The two URLs become the tenant's webhooks named :data:`GENERIC` and
:data:`SLACK` (JSON and Slack format), the address the e-mail channel
:data:`EMAIL` (URL ``mailto:<address>``), all with that severity and those
types, so real conflicts reach them through the one dispatcher
(:mod:`bgp_orchestrator.alerts.dispatcher`) and its delivery bookkeeping; a
blank field removes its channel. URLs pass the same egress check as the API's
webhooks, and a new webhook gets a signing secret, shown once. "Send test
alert" renders a sample conflict with the dispatcher's own formats and sends it
to every configured channel: signed and posted with
:meth:`AlertDispatcher.post` to each URL, mailed with the dispatcher's mailer
to the address (or reported as not sent when no SMTP server is configured).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson

from bgp_orchestrator.alerts import formats, webhook_secrets
from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.mail_format import recipient_address
from bgp_orchestrator.alerts.signing import SecretBox, signature_headers
from bgp_orchestrator.detection.conflict import ConflictType, Severity
from bgp_orchestrator.errors import BgpoError, InvalidInput

GENERIC = "portal-webhook"
SLACK = "portal-slack"
EMAIL = "portal-email"
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


@dataclass
class Preferences:
    email: str = ""
    webhook_url: str = ""
    slack_url: str = ""
    min_severity: str = Severity.MEDIUM.value
    types: list[str] = field(default_factory=list)
    updated_at: datetime | None = None
    updated_by: str = ""


def _url(field_name: str, value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(
            "invalid-url", f"{field_name} must be an http(s):// URL", field_name, value
        )
    return value


def validated(
    email: str, webhook_url: str, slack_url: str, min_severity: str, types: list[str]
) -> Preferences:
    email = email.strip()
    if email and not _EMAIL.match(email):
        raise InvalidInput("invalid-email", "email must be an e-mail address", "email", email)
    if email:
        try:
            recipient_address(email)
        except ValueError:
            raise InvalidInput(
                "invalid-email", "email must be one e-mail address (local@domain)", "email", email
            ) from None
    if min_severity not in {s.value for s in Severity}:
        raise InvalidInput(
            "invalid-severity",
            "min_severity must be one of info, low, medium, high, critical",
            "min_severity",
            min_severity,
        )
    known = {t.value for t in ConflictType}
    unknown = [t for t in types if t not in known]
    if unknown:
        raise InvalidInput("invalid-type", "unknown conflict type", "types", unknown[0])
    return Preferences(
        email,
        _url("webhook_url", webhook_url),
        _url("slack_url", slack_url),
        min_severity,
        sorted(set(types)),
    )


async def load(conn: asyncpg.Connection, tenant_id: int) -> Preferences:
    row = await conn.fetchrow("SELECT * FROM alert_preferences WHERE tenant_id = $1", tenant_id)
    hooks = {
        r["name"]: r["url"]
        for r in await conn.fetch(
            "SELECT name, url FROM webhooks WHERE tenant_id = $1 AND name = ANY($2::text[])",
            tenant_id,
            [GENERIC, SLACK],
        )
    }
    prefs = Preferences(webhook_url=hooks.get(GENERIC, ""), slack_url=hooks.get(SLACK, ""))
    if row is not None:
        prefs.email = row["email"] or ""
        prefs.min_severity = row["min_severity"]
        prefs.types = list(row["types"])
        prefs.updated_at = row["updated_at"]
        prefs.updated_by = row["updated_by"]
    return prefs


async def save(
    conn: asyncpg.Connection,
    tenant_id: int,
    prefs: Preferences,
    who: str,
    egress: EgressPolicy,
    box: SecretBox,
) -> dict[str, str]:
    """Store the preferences and their webhooks; the signing secrets issued for webhooks
    that had none (shown to the user once), by channel name. A URL that may not be
    reached (a private address, say) is refused first, naming its form field."""
    for field_name, url in (("webhook_url", prefs.webhook_url), ("slack_url", prefs.slack_url)):
        if url:
            await egress.check(url, field_name)
    issued: dict[str, str] = {}
    mailto = f"mailto:{prefs.email}" if prefs.email else ""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alert_preferences (tenant_id, email, min_severity, types, updated_by) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET "
            "email = EXCLUDED.email, min_severity = EXCLUDED.min_severity, "
            "types = EXCLUDED.types, updated_by = EXCLUDED.updated_by, updated_at = now()",
            tenant_id,
            prefs.email or None,
            prefs.min_severity,
            prefs.types,
            who,
        )
        for name, url, fmt in (
            (GENERIC, prefs.webhook_url, "json"),
            (SLACK, prefs.slack_url, "slack"),
            (EMAIL, mailto, "json"),  # the format is unused by e-mail
        ):
            if not url:
                await conn.execute(
                    "DELETE FROM webhooks WHERE tenant_id = $1 AND name = $2", tenant_id, name
                )
                continue
            row = await conn.fetchrow(
                "INSERT INTO webhooks (tenant_id, name, url, format, min_severity, types) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO UPDATE SET "
                "url = EXCLUDED.url, format = EXCLUDED.format, "
                "min_severity = EXCLUDED.min_severity, types = EXCLUDED.types, "
                "enabled = true, updated_at = now() "
                "RETURNING id, secret_ciphertext IS NULL AS unsigned",
                tenant_id,
                name,
                url,
                fmt,
                prefs.min_severity,
                prefs.types,
            )
            assert row is not None
            if row["unsigned"] and name != EMAIL:  # e-mail is not signed
                issued[name] = await webhook_secrets.issue(conn, box, tenant_id, row["id"])
    return issued


def sample_conflict(prefs: Preferences, tenant_slug: str) -> dict[str, Any]:
    """A made-up conflict that says it is a test, at the tenant's minimum severity."""
    now = datetime.now(UTC).isoformat()
    kind = prefs.types[0] if prefs.types else ConflictType.EXACT_HIJACK.value
    return {
        "id": 0,
        "type": kind,
        "severity": prefs.min_severity,
        "state": "ongoing",
        "scope": "tenant",
        "prefix": "192.0.2.0/24",
        "origin_asn": 64511,
        "as_path": "64496 64511",
        "peers": ["exabgp|198.51.100.1"],
        "first_seen": now,
        "last_seen": now,
        "details": {
            "explanation": f"Test alert from the BGP Orchestrator portal for {tenant_slug}; "
            "no action needed."
        },
        "test": True,
    }


#: What the test-alert result says for e-mail when no SMTP server is configured.
EMAIL_OFF = "not sent: no SMTP server is configured (BGPO_SMTP_HOST)"


async def send_test(
    dispatcher: AlertDispatcher,
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    tenant_id: int,
    prefs: Preferences,
    tenant_slug: str,
) -> list[tuple[str, str | None]]:
    """Send a test alert to each configured channel: posted to each webhook, signed with
    its secret as real deliveries are, and mailed to the address. (channel, error or
    None) each, in the form's order. The channels go at the same time: a slow one
    delays the answer by its own timeout only."""
    conflict = sample_conflict(prefs, tenant_slug)
    mailed, posted = await asyncio.gather(
        _mail_test(dispatcher, prefs.email, conflict),
        _post_tests(dispatcher, client, conn, tenant_id, prefs, conflict),
    )
    return [*mailed, *posted]


async def _mail_test(
    dispatcher: AlertDispatcher, address: str, conflict: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """[("email", error or None)], or [] when no address is set."""
    if not address:
        return []
    return [("email", await _mail_one(dispatcher, address, conflict))]


async def _mail_one(
    dispatcher: AlertDispatcher, address: str, conflict: dict[str, Any]
) -> str | None:
    mailer = dispatcher.mailer
    if not mailer.enabled:
        return EMAIL_OFF
    try:
        message = mailer.message("test", conflict, address, f"test-{secrets.token_hex(8)}")
    except ValueError as exc:
        return f"Refused: {exc}"
    return await mailer.send(message)


async def _post_tests(
    dispatcher: AlertDispatcher,
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    tenant_id: int,
    prefs: Preferences,
    conflict: dict[str, Any],
) -> list[tuple[str, str | None]]:
    sealed = {
        r["name"]: r["secret_ciphertext"]
        for r in await conn.fetch(
            "SELECT name, secret_ciphertext FROM webhooks WHERE tenant_id = $1 AND name = ANY($2)",
            tenant_id,
            [GENERIC, SLACK],
        )
    }
    results: list[tuple[str, str | None]] = []
    for channel, name, url, render in (
        ("webhook", GENERIC, prefs.webhook_url, formats.generic),
        ("slack", SLACK, prefs.slack_url, formats.slack),
    ):
        if not url:
            continue
        body = orjson.dumps(render("test", 0, conflict))
        message_id = f"test-{secrets.token_hex(8)}"
        headers = {"X-BGPO-Event": "test", "X-BGPO-Delivery": message_id, "X-BGPO-Attempt": "1"}
        ciphertext = sealed.get(name)
        if ciphertext and dispatcher.secrets is not None:
            try:
                secret = dispatcher.secrets.open(ciphertext)
            except BgpoError as exc:
                results.append((channel, f"Unsigned: {exc.message}"))
                continue
            headers.update(signature_headers(secret, message_id, int(time.time()), body))
        results.append((channel, await dispatcher.post(client, url, body, headers)))
    return results
