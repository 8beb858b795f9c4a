"""E-mail alerts end to end, with a real SMTP server (aiosmtpd) and real PostgreSQL: the
portal's preferences become an e-mail channel, matching conflicts are mailed by the
dispatcher through the webhooks' delivery bookkeeping, an SMTP server that never answers
times out without delaying anyone else, and no SMTP server means "not sent", visibly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from bgp_orchestrator.alerts.mailer import NOT_CONFIGURED, Mailer
from bgp_orchestrator.alerts.signing import secret_box
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.portal import alerting
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database
from tests.integration.conftest import Tenant, lab_dispatcher, make_tenant
from tests.integration.portal_stack import PortalStack, start_stack
from tests.integration.smtp_sink import MuteSmtpServer, SmtpSink
from tests.integration.test_conflicts_api import tenant_id, write
from tests.integration.test_portal import csrf_of, sign_in
from tests.integration.test_webhook_faults import FastReceiver, add_hook, latencies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def hijack(tenant: int, prefix: str, severity: Severity = Severity.CRITICAL) -> Conflict:
    return Conflict(
        type=ConflictType.EXACT_HIJACK,
        severity=severity,
        tenant_id=tenant,
        prefix=prefix,
        origin_asn=64666,
        as_path="3356 64666",
        peer="ris|10.0.0.1",
        seen_at=1_780_000_000.0,
        details={"authorised_origins": [64500], "explanation": "AS64666 is not authorised"},
    )


def leak(tenant: int, prefix: str) -> Conflict:
    return Conflict(
        type=ConflictType.ROUTE_LEAK,
        severity=Severity.CRITICAL,
        tenant_id=tenant,
        prefix=prefix,
        origin_asn=64500,
        as_path="3356 64777 64500",
        peer="ris|10.0.0.1",
        seen_at=1_780_000_000.0,
        details={},
    )


async def subscribe(db: Database, settings: Settings, tenant: int, address: str) -> int:
    """Save the portal's preferences (e-mail only, high and up, hijacks only): the id of
    the e-mail channel they create."""
    prefs = alerting.validated(address, "", "", "high", [ConflictType.EXACT_HIJACK.value])
    dispatcher = lab_dispatcher(db, settings)
    async with db.connection() as conn:
        issued = await alerting.save(
            conn, tenant, prefs, "test", dispatcher.egress, secret_box(settings)
        )
        assert issued == {}  # e-mail has no signing secret
        row = await conn.fetchrow(
            "SELECT id, url, channel FROM webhooks WHERE tenant_id = $1 AND name = $2",
            tenant,
            alerting.EMAIL,
        )
    assert row is not None and (row["url"], row["channel"]) == (f"mailto:{address}", "email")
    return int(row["id"])


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def sink_mailer(sink: SmtpSink, **kwargs: object) -> Mailer:
    return Mailer(
        host="127.0.0.1",
        port=sink.port,
        tls="none",
        sender="alerts@bgpo.example",
        link_base_url="https://bgpo.example.net",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_matching_conflicts_are_mailed_once_and_listed_as_delivered(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpSink
) -> None:
    acme = await make_tenant(client, "acme")
    tid = await tenant_id(db, "acme")
    channel = await subscribe(db, settings, tid, "noc@acme.example")
    await write(
        db,
        hijack(tid, "203.0.113.0/24"),
        hijack(tid, "198.51.100.0/24", Severity.LOW),  # below the minimum severity
        leak(tid, "192.0.2.0/24"),  # a type not subscribed to
    )
    dispatcher = lab_dispatcher(db, settings, mailer=sink_mailer(smtp))
    async with httpx.AsyncClient() as http:
        assert await dispatcher.fan_out() == 3
        assert await dispatcher.deliver_due(http) == 1
        assert await dispatcher.deliver_due(http) == 0  # once

    (mail,) = smtp.messages
    assert mail["X-Envelope-To"] == "noc@acme.example"
    assert mail["From"] == "alerts@bgpo.example"
    assert mail["Subject"].strip() == (
        "[BGPO critical] exact-prefix-hijack opened: 203.0.113.0/24 from AS64666"
    )
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    body = text.get_content()
    for fact in ("203.0.113.0/24", "AS64666", "Expected origin: AS64500", "critical"):
        assert fact in body
    assert "Last seen:" in body and "2026-05-28T20:26:40+00:00" in body
    async with db.connection() as conn:
        conflict_id = await conn.fetchval(
            "SELECT id FROM conflicts WHERE prefix = '203.0.113.0/24'"
        )
    assert f"https://bgpo.example.net/api/v1/conflicts/{conflict_id}" in body
    assert "https://bgpo.example.net/portal/" in body
    assert "AS64666 is not authorised" in html.get_content()

    # The API lists the e-mail channel among the webhooks, with its delivery.
    r = await client.get("/api/v1/webhooks", headers=acme.headers)
    assert r.status_code == 200, r.text
    (listed,) = r.json()["items"]
    assert (listed["id"], listed["url"]) == (channel, "mailto:noc@acme.example")
    r = await client.get(f"/api/v1/webhooks/{channel}/deliveries", headers=acme.headers)
    (delivery,) = r.json()["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert mail["Message-ID"] == f"<bgpo-delivery-{delivery['id']}@bgpo.example>"


async def test_without_an_smtp_server_a_delivery_is_given_up_with_the_reason_and_retried(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpSink
) -> None:
    acme = await make_tenant(client, "acme")
    tid = await tenant_id(db, "acme")
    channel = await subscribe(db, settings, tid, "noc@acme.example")
    await write(db, hijack(tid, "203.0.113.0/24"))
    off = lab_dispatcher(db, settings, mailer=Mailer())
    async with httpx.AsyncClient() as http:
        await off.fan_out()
        assert await off.deliver_due(http) == 1
    assert off.counters.given_up == 1

    base = f"/api/v1/webhooks/{channel}/deliveries"
    r = await client.get(f"{base}?status=failed", headers=acme.headers)
    (failed,) = r.json()["items"]
    assert failed["attempts"] == 1 and failed["failed_at"] is not None
    assert failed["last_error"] == NOT_CONFIGURED

    # Once the operator configures a server, the retry goes out.
    r = await client.post(f"{base}/{failed['id']}/retry", headers=acme.headers)
    assert r.status_code == 200, r.text
    on = lab_dispatcher(db, settings, mailer=sink_mailer(smtp))
    async with httpx.AsyncClient() as http:
        assert await on.deliver_due(http) == 1
    assert len(smtp.messages) == 1
    r = await client.get(f"{base}?status=delivered", headers=acme.headers)
    assert r.json()["total"] == 1


async def test_starttls_is_required_so_nothing_goes_out_in_clear_text(smtp: SmtpSink) -> None:
    """The test server offers no STARTTLS: the default mode refuses to send without it."""
    mailer = Mailer(host="127.0.0.1", port=smtp.port, timeout_s=3.0)
    message = mailer.message("opened", {"type": "moas", "prefix": "192.0.2.0/24"}, "a@b.example", 1)
    error = await mailer.send(message)
    assert error == "SMTPException: SMTP STARTTLS extension not supported by server."
    assert smtp.messages == []


async def test_an_smtp_server_that_never_answers_times_out_and_delays_no_one_else(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await make_tenant(client, "mailco")
    brisk: Tenant = await make_tenant(client, "brisk")
    mail_tid, brisk_tid = await tenant_id(db, "mailco"), await tenant_id(db, "brisk")
    channel = await subscribe(db, settings, mail_tid, "noc@mailco.example")
    with FastReceiver() as receiver:
        await add_hook(client, brisk, receiver.url)
        async with MuteSmtpServer() as mute:
            mailer = Mailer(host="127.0.0.1", port=mute.port, tls="none", timeout_s=1.0)
            dispatcher = lab_dispatcher(
                db,
                settings,
                timeout_s=1.0,
                interval_s=0.25,
                max_attempts=2,
                backoff_s=0.5,
                lease_s=5.0,
                mailer=mailer,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop))
            try:
                baseline = await latencies(db, brisk_tid, receiver, 0, 5)
                await write(db, *(hijack(mail_tid, f"45.65.{i}.0/24") for i in range(8)))
                await mute.wait_for(4, 5)  # the e-mail attempts are hanging
                beside = await latencies(db, brisk_tid, receiver, 100, 5)
                assert dispatcher.stats()["in_flight"] >= 1
                print(
                    f"\nwebhook latency (s): alone max {baseline[-1]:.3f}; beside a mute "
                    f"SMTP server max {beside[-1]:.3f}"
                )
                assert beside[-1] < 1.0
                assert beside[-1] < baseline[-1] + 0.5
                await wait_given_up(db, channel, 8, 30)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT attempts, last_error FROM webhook_deliveries WHERE webhook_id = $1", channel
        )
    assert len(rows) == 8
    assert all(r["attempts"] == 2 for r in rows)
    assert all(r["last_error"].startswith("Timeout: the SMTP server") for r in rows)
    assert mute.connections == 16  # each delivery tried twice, no more


async def wait_given_up(db: Database, channel: int, count: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        async with db.connection() as conn:
            failed = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 "
                "AND status = 'failed'",
                channel,
            )
        if failed >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{failed} of {count} e-mail deliveries given up")


# The portal: a real sign-in, the alert preferences page and its "send test alert".


@pytest.fixture
def mail_stack(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortalStack]:
    yield from start_stack(database_url, tmp_path_factory.mktemp("portal-mail"))


@pytest.fixture
def no_mail_stack(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortalStack]:
    yield from start_stack(database_url, tmp_path_factory.mktemp("portal-nomail"), smtp=False)


def demo_tenant(stack: PortalStack) -> None:
    stack.sql("TRUNCATE tenants RESTART IDENTITY CASCADE")
    stack.sql("INSERT INTO tenants (slug, name) VALUES ('demo', 'Demo')")


def save_and_test(stack: PortalStack, email: str) -> str:
    """Save e-mail + webhook preferences and press "send test alert": the page after."""
    with sign_in(stack) as portal:
        page = portal.get("/portal/alerts").text
        r = portal.post(
            "/portal/alerts",
            data={
                "csrf": csrf_of(page),
                "email": email,
                "webhook_url": stack.receiver.url,
                "min_severity": "high",
            },
        )
        assert r.status_code == 303, r.text
        page = portal.get("/portal/alerts").text
        assert "Alert preferences saved." in page
        r = portal.post("/portal/alerts/test", data={"csrf": csrf_of(page)})
        assert r.status_code == 303, r.text
        return portal.get("/portal/alerts").text


def test_the_portals_test_alert_reaches_the_mailbox_and_the_webhook(
    mail_stack: PortalStack,
) -> None:
    demo_tenant(mail_stack)
    page = save_and_test(mail_stack, "noc@demo.example")
    assert "Test alert delivered - email: delivered; webhook: delivered." in page
    assert "Alerts are mailed to this address" in page
    assert mail_stack.smtp is not None
    (mail,) = mail_stack.smtp.wait_for(1)
    assert mail["X-Envelope-To"] == "noc@demo.example"
    assert (
        mail["Subject"]
        .strip()
        .startswith("[TEST] [BGPO high] exact-prefix-hijack test: 192.0.2.0/24")
    )
    text = mail.get_body(("plain",))
    assert text is not None and "no action needed" in text.get_content()
    assert len(mail_stack.receiver.received) == 1


def test_without_smtp_the_portal_says_e_mail_is_off_and_the_test_was_not_mailed(
    no_mail_stack: PortalStack,
) -> None:
    demo_tenant(no_mail_stack)
    page = save_and_test(no_mail_stack, "noc@demo.example")
    assert "E-mail is off: no SMTP server is configured" in page
    assert (
        "Test alert not delivered everywhere - email: not sent: no SMTP server is configured "
        "(BGPO_SMTP_HOST); webhook: delivered." in page
    )
    assert len(no_mail_stack.receiver.received) == 1  # the webhook still got its test
