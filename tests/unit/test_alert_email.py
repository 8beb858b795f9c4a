"""Alert e-mail: the message a network engineer reads, the mailer's SMTP options and
failures, and the dispatcher giving up at once when e-mail is off (no server here; the
real SMTP server is in tests/integration/test_email_alerts.py)."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
from pydantic import SecretStr, ValidationError

from bgp_orchestrator.alerts import mail_format
from bgp_orchestrator.alerts.mailer import NOT_CONFIGURED, Mailer
from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.portal import alerting
from bgp_orchestrator.settings import Settings, get_settings
from tests.unit.test_alert_dispatcher import (
    CONFLICT,
    RecordingConnection,
    RecordingDatabase,
    dispatcher,
)

LINKS = mail_format.Links("https://bgpo.example.net/")
HIJACK = {
    "id": 42,
    "type": "exact-prefix-hijack",
    "severity": "critical",
    "state": "ongoing",
    "prefix": "203.0.113.0/24",
    "origin_asn": 64666,
    "as_path": "3356 64666",
    "peers": ["ris|rrc00", "ris|rrc01"],
    "first_seen": "2026-12-02T09:40:00+00:00",
    "last_seen": "2026-12-02T09:41:30+00:00",
    "details": {
        "authorised_origins": [64500, 64501],
        "explanation": "AS64666 <script>announced</script> it",
    },
}


def build(conflict: dict[str, Any] = HIJACK, **kwargs: Any) -> EmailMessage:
    options: dict[str, Any] = {
        "sender": "alerts@bgpo.example",
        "recipient": "noc@acme.example",
        "delivery_id": 7,
        "links": LINKS,
        **kwargs,
    }
    return mail_format.build("opened", conflict, **options)


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML bodies, as a mail client decodes them from the wire bytes."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_the_subject_and_headers_say_what_happened() -> None:
    message = build()
    assert message["Subject"] == (
        "[BGPO critical] exact-prefix-hijack opened: 203.0.113.0/24 from AS64666"
    )
    assert message["To"] == "noc@acme.example"
    assert message["From"] == "alerts@bgpo.example"
    assert message["Message-ID"] == "<bgpo-delivery-7@bgpo.example>"
    assert message["X-BGPO-Delivery"] == "7" and message["X-BGPO-Event"] == "opened"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"


def test_a_retry_of_the_same_delivery_has_the_same_message_id() -> None:
    assert build()["Message-ID"] == build()["Message-ID"]
    assert build(delivery_id=8)["Message-ID"] != build()["Message-ID"]


def test_the_plain_text_lists_the_facts_an_engineer_needs() -> None:
    text, _ = parts(build())
    lines = dict(
        (label.strip(), value.strip())
        for label, _, value in (line.partition(":") for line in text.splitlines())
        if value
    )
    assert lines["Conflict type"] == "exact-prefix-hijack"
    assert lines["Prefix"] == "203.0.113.0/24"
    assert lines["Origin AS"] == "AS64666"
    assert lines["Expected origin"] == "AS64500, AS64501"
    assert lines["Severity"] == "critical"
    assert lines["Last seen"] == "2026-12-02T09:41:30+00:00"
    assert lines["Seen by"] == "2 peer(s)"
    assert "https://bgpo.example.net/portal/" in text
    assert "https://bgpo.example.net/api/v1/conflicts/42" in text


def test_the_html_part_escapes_every_value() -> None:
    _, html = parts(build())
    assert "<script>" not in html
    assert "AS64666 &lt;script&gt;announced&lt;/script&gt; it" in html
    assert '<a href="https://bgpo.example.net/api/v1/conflicts/42">' in html
    assert "<td>AS64500, AS64501</td>" in html


def test_the_expected_origin_comes_from_rpki_vrps_or_is_unknown() -> None:
    vrps = {"covering_vrps": [{"asn": 64500, "max_length": 24}, {"asn": 64500}]}
    assert mail_format.expected_origin(vrps) == "AS64500"
    assert mail_format.expected_origin({}) == "-"


def test_a_test_alert_says_so_and_has_no_api_link() -> None:
    text, _ = parts(build({**HIJACK, "id": 0, "test": True}))
    assert text.startswith("[TEST] [BGPO critical]")
    assert "/api/v1/conflicts/" not in text


@pytest.mark.parametrize(
    "recipient", ["a@b.example, c@d.example", "noc@acme.example\r\nBcc: x@y.example", "noc"]
)
def test_only_one_plain_recipient_is_accepted(recipient: str) -> None:
    with pytest.raises(ValueError):
        build(recipient=recipient)


async def test_without_a_host_nothing_is_sent_and_the_mailer_says_why() -> None:
    off = Mailer.from_settings(Settings(_env_file=None))
    assert not off.enabled
    assert await off.send(build()) == NOT_CONFIGURED


async def capture(monkeypatch: pytest.MonkeyPatch, **options: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def send(message: EmailMessage, **kwargs: Any) -> tuple[dict[str, Any], str]:
        seen.update(kwargs, message=message)
        return {}, "250 OK"

    monkeypatch.setattr(aiosmtplib, "send", send)
    assert await Mailer(**options).send(build()) is None
    return seen


async def test_starttls_is_required_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = await capture(monkeypatch, host="smtp.example.net")
    assert (seen["port"], seen["start_tls"], seen["use_tls"]) == (587, True, False)
    assert seen["username"] is None and seen["password"] is None
    seen = await capture(monkeypatch, host="smtp.example.net", tls="tls")
    assert (seen["port"], seen["start_tls"], seen["use_tls"]) == (465, False, True)
    seen = await capture(monkeypatch, host="relay", port=2525, tls="none")
    assert (seen["port"], seen["start_tls"], seen["use_tls"]) == (2525, False, False)


async def test_the_password_reaches_smtp_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    options = {"host": "smtp.example.net", "username": "bgpo", "password": SecretStr("s3cr3t!")}
    seen = await capture(monkeypatch, **options)
    assert (seen["username"], seen["password"]) == ("bgpo", "s3cr3t!")
    assert "s3cr3t!" not in repr(Mailer(**options))  # type: ignore[arg-type]
    assert "s3cr3t!" not in caplog.text


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiosmtplib.SMTPConnectError("refused"), "SMTPConnectError: refused"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), "Timeout: the SMTP server did not finish"),
        (
            aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"),
            "SMTPAuthenticationError: SMTP 535 5.7.8 bad credentials",
        ),
        (ConnectionResetError("reset"), "ConnectionResetError: reset"),
    ],
)
async def test_smtp_failures_become_the_attempts_error(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, expected: str
) -> None:
    async def send(message: EmailMessage, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(aiosmtplib, "send", send)
    error = await Mailer(host="smtp.example.net", timeout_s=2).send(build())
    assert error is not None and error.startswith(expected)


def test_settings_read_the_smtp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BGPO_SMTP_HOST": "smtp.example.net",
        "BGPO_SMTP_PORT": "2587",
        "BGPO_SMTP_FROM": "bgp@example.net",
        "BGPO_SMTP_USERNAME": "bgpo",
        "BGPO_SMTP_PASSWORD": "s3cr3t!",
        "BGPO_SMTP_TLS": "tls",
        "BGPO_SMTP_TIMEOUT_S": "4",
        "BGPO_SMTP_LINK_BASE_URL": "https://bgp.example.net",
    }.items():
        monkeypatch.setenv(name, value)
    configured = Mailer.from_settings(Settings(_env_file=None))
    assert configured == Mailer(
        "smtp.example.net", 2587, "bgp@example.net", "bgpo", SecretStr("s3cr3t!"), "tls", 4.0,
        "https://bgp.example.net",
    )  # fmt: skip
    assert "s3cr3t!" not in repr(Settings(_env_file=None))
    monkeypatch.setenv("BGPO_SMTP_TLS", "ssl")
    with pytest.raises(ValidationError, match="smtp_tls"):
        Settings(_env_file=None)


def test_production_refuses_a_password_over_plain_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BGPO_ENVIRONMENT": "production",
        "BGPO_DATABASE_URL": "postgresql://bgpo:Xk3-long-real-secret@db:5432/bgpo",
        "BGPO_REDIS_URL": "redis://cache:6379/0",
        "BGPO_KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092",
        "BGPO_VICTORIA_METRICS_URL": "http://vm:8428",
        "BGPO_OIDC_ISSUER": "https://sso.example.net/realms/bgpo",
        "BGPO_API_KEY_SECRET": "k" * 20 + "-a-real-random-secret",
        "BGPO_SMTP_HOST": "smtp.example.net",
        "BGPO_SMTP_USERNAME": "bgpo",
        "BGPO_SMTP_PASSWORD": "s3cr3t!",
    }.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).smtp_tls == "starttls"
    monkeypatch.setenv("BGPO_SMTP_TLS", "none")
    with pytest.raises(ValidationError, match="clear text") as caught:
        Settings(_env_file=None)
    assert "s3cr3t!" not in str(caught.value)


class EmailConnection(RecordingConnection):
    """The recording connection, with the due delivery's channel an e-mail address."""

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        self.log.append((sql, args))
        if "FROM conflicts" in sql:
            return CONFLICT
        return {
            "tenant_id": 1,
            "url": "mailto:noc@acme.example",
            "format": "json",
            "channel": "email",
            "secret_ciphertext": None,
            "event": "opened",
            "conflict_id": 5,
        }


class EmailDatabase(RecordingDatabase):
    @asynccontextmanager
    async def connection(self) -> AsyncIterator[RecordingConnection]:
        yield EmailConnection(self.log)

    transaction = connection


async def test_with_e_mail_off_a_delivery_is_given_up_at_once_with_the_reason() -> None:
    db = EmailDatabase()
    sender = dispatcher(db, max_attempts=10, mailer=Mailer())
    async with httpx.AsyncClient() as client:
        assert await sender.deliver_due(client) == 1
    sql, args = db.log[-1]
    assert "SET last_error" in sql
    # Attempt 3 of at most 10, yet given up now (no server to retry against), with why.
    assert args == (7, NOT_CONFIGURED, 3, 2.0, 3)
    assert NOT_CONFIGURED.startswith("Not sent: no SMTP server is configured")


@pytest.mark.parametrize("address", ["a,b@acme.example", "a<b@acme.example", "NOC <n@a.example>"])
def test_the_portal_refuses_what_could_not_be_one_recipient(address: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        alerting.validated(address, "", "", "high", [])
    assert caught.value.field == "email"
    assert alerting.validated(" noc@acme.example ", "", "", "high", []).email == "noc@acme.example"


def test_a_dispatcher_given_no_mailer_uses_the_processs_smtp_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Serve deployment builds its dispatcher without a mailer: it reads BGPO_SMTP_*."""
    monkeypatch.setenv("BGPO_SMTP_HOST", "smtp.example.net")
    monkeypatch.setenv("BGPO_SMTP_TIMEOUT_S", "7")
    get_settings.cache_clear()
    try:
        sender = dispatcher(RecordingDatabase())
        assert (sender.mailer.host, sender.mailer.timeout_s) == ("smtp.example.net", 7.0)
        assert sender.mailer is sender.mailer  # read once
    finally:
        get_settings.cache_clear()
