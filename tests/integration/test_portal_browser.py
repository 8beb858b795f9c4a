"""The portal in a real browser: Debian's Chromium, headless, driven by Playwright.

Signs in through the OIDC provider's own login page, opens and comments on a
ticket, changes alert preferences and sends a test alert to a receiver on
loopback, looks at the usage charts, downloads an invoice, creates an API key,
uses it against the API and revokes it, and signs out at the provider. Every
page's screenshot lands in ``$BGPO_TEST_ARTIFACTS/portal`` (default
``build/test-artifacts/portal``, git-ignored). The browser may reach loopback
only: any other request fails the test.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; ``./dev test`` installs
it) and the ``playwright`` package; never ``playwright install``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import REPO
from tests.integration.portal_stack import DEMO_ADMIN, PortalStack, start_stack

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("BGPO_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # Names resolve to nothing: a CDN or any other outside host cannot load.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def artifacts_dir() -> Path:
    root = Path(os.environ.get("BGPO_TEST_ARTIFACTS") or REPO / "build" / "test-artifacts")
    out = root / "portal"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalStack]:
    yield from start_stack(database_url, tmp_path_factory.mktemp("portal-browser"))


@pytest.fixture(scope="module")
def demo(stack: PortalStack) -> None:
    """Tenant ``demo`` (the demo users' tenant) with a session, and a week of usage."""
    stack.sql("TRUNCATE tenants RESTART IDENTITY CASCADE")
    created = datetime.now(UTC) - timedelta(days=40)
    stack.sql("INSERT INTO tenants (slug, name, created_at) VALUES ('demo', 'Demo Networks', $1)",
              created)  # fmt: skip
    with httpx.Client(base_url=stack.api.url, headers={"X-Tenant": "demo"}) as api:
        assert api.post("/api/v1/asns", json={"asn": 64500}).status_code == 201
        r = api.post(
            "/api/v1/sessions",
            json={"local_asn": 64500, "peer_asn": 64501, "peer_address": "192.0.2.1",
                  "interconnect": "pni", "description": "transit A"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    today = datetime.now(UTC).date()
    for back in range(1, 8):
        day: date = today - timedelta(days=back)
        stack.sql(
            "INSERT INTO usage_daily (tenant_id, day, metric, value) "
            "SELECT id, $1, m, v FROM tenants, unnest($2::text[], $3::bigint[]) AS u(m, v) "
            "WHERE slug = 'demo'",
            day,
            ["api_calls", "updates_processed", "sessions_monitored", "prefixes_monitored"],
            [1000 * back, 250_000 * back, 1, 3],
        )


def test_the_portal_in_a_browser(browser: Any, stack: PortalStack, demo: None) -> None:
    shots = artifacts_dir()
    outside: list[str] = []
    context = browser.new_context(accept_downloads=True, viewport={"width": 1360, "height": 900})

    def only_loopback(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            # The provider's own login pages ask a CDN for their CSS (and work unstyled
            # without it); a request from a portal page would be a bug.
            frame = route.request.frame.url if route.request.frame else ""
            if frame.startswith(stack.portal_url):
                outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.set_default_timeout(15_000)
    portal = stack.portal_url

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    # Sign in: the portal sends the browser to the provider, which sends it back.
    page.goto(f"{portal}/")
    assert page.url.startswith(stack.oidc.url)
    shot("01-provider-login")
    page.get_by_role("button", name=DEMO_ADMIN).click()
    page.wait_for_url(f"{portal}/")
    assert page.get_by_text("Demo Admin").is_visible()
    assert page.get_by_text("transit A").is_visible()
    shot("02-dashboard")
    page.emulate_media(color_scheme="dark")  # the operator's OS in dark mode
    shot("02-dashboard-dark")
    page.emulate_media(color_scheme="light")

    # Support: open a ticket, comment, close it; the history shows both changes.
    page.get_by_role("link", name="Tickets").click()
    page.get_by_label("Subject").fill("Route leak towards AS64501")
    page.get_by_label("Description").fill("Since 09:40 UTC our /24 is seen via AS64501.")
    page.get_by_role("button", name="Open ticket").click()
    page.get_by_text("opened.").wait_for()
    page.get_by_label("Add a comment").fill("Still seen from 3 collectors.")
    page.get_by_role("button", name="Comment").click()
    page.get_by_text("Comment added.").wait_for()
    assert page.get_by_text("Still seen from 3 collectors.").is_visible()
    page.get_by_role("button", name="Close ticket").click()
    page.get_by_text("Ticket is now closed.").wait_for()
    assert page.get_by_text("open → closed").is_visible()
    shot("03-ticket")

    # Alerts: e-mail and a generic webhook on loopback, high and up, two conflict types;
    # then a test, which reaches both.
    page.get_by_role("link", name="Alerts").click()
    assert page.get_by_text("Alerts are mailed to this address").is_visible()
    page.get_by_label("E-mail address").fill("noc@demo.example")
    page.get_by_label("Webhook URL (JSON)").fill(stack.receiver.url)
    page.get_by_label("Minimum severity").select_option("high")
    page.get_by_label("exact-prefix-hijack").check()
    page.get_by_label("route-leak").check()
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Alert preferences saved.").wait_for()
    page.get_by_role("button", name="Send test alert").click()
    page.get_by_text("Test alert delivered - email: delivered; webhook: delivered.").wait_for()
    shot("04-alerts")
    assert stack.smtp is not None
    (mail,) = stack.smtp.wait_for(1)
    assert mail["X-Envelope-To"] == "noc@demo.example"
    assert mail["Subject"].strip().startswith("[TEST] [BGPO high] exact-prefix-hijack test")
    (delivery,) = stack.receiver.received
    assert delivery["headers"]["X-BGPO-Event"] == "test"
    assert delivery["body"]["conflict"]["test"] is True
    assert delivery["body"]["conflict"]["severity"] == "high"
    hooks = stack.sql("SELECT url, min_severity, types FROM webhooks ORDER BY url")
    assert [(h["url"], h["min_severity"], sorted(h["types"])) for h in hooks] == [
        (stack.receiver.url, "high", ["exact-prefix-hijack", "route-leak"]),
        ("mailto:noc@demo.example", "high", ["exact-prefix-hijack", "route-leak"]),
    ]

    # Usage: four charts with a bar per day; the seeded week shows.
    page.get_by_role("link", name="Usage").click()
    page.get_by_role("link", name="7 days").click()
    chart = page.locator("#usage-api_calls svg.chart")
    assert chart.is_visible()
    assert page.locator("#usage-api_calls rect.bar").count() == 7
    assert page.locator("svg.chart").count() == 4
    shot("05-usage")

    # Plan: switch with the proration shown, then the invoice and its PDF.
    page.get_by_role("link", name="Plan").click()
    assert page.get_by_text("net $").first.is_visible()
    page.get_by_role("button", name="Switch to Team").click()
    page.get_by_text("Plan changed to Team, effective now.").wait_for()
    shot("06-plan")
    page.get_by_role("link", name="Invoices").click()
    shot("07-invoices")
    page.get_by_role("link", name="BGPO-DEMO-" + datetime.now(UTC).strftime("%Y%m")).click()
    assert page.get_by_text("Team plan").is_visible()
    shot("08-invoice")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download PDF").click()
    pdf = shots / info.value.suggested_filename
    info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")

    # API keys: create (shown once), use it against the API, revoke, refused.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("netbox-sync")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-api-key").inner_text().strip()
    assert key.startswith("bgpo_")
    shot("09-api-key-created")
    with httpx.Client(base_url=stack.api.url) as api:
        auth = {"Authorization": f"Bearer {key}"}
        r = api.get("/api/v1/sessions", headers=auth)
        assert r.status_code == 200 and r.json()["total"] == 1
        page.goto(f"{portal}/api-keys")
        assert page.locator("#new-api-key").count() == 0  # never shown again
        page.get_by_role("button", name="Revoke netbox-sync").click()
        page.get_by_text("API key 'netbox-sync' revoked.").wait_for()
        shot("10-api-key-revoked")
        assert api.get("/api/v1/sessions", headers=auth).status_code == 401

    # Sign out at the provider (RP-initiated logout) and land on the portal again.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{portal}/signed-out")
    shot("11-signed-out")
    page.goto(f"{portal}/")
    assert page.url.startswith(stack.oidc.url)  # the session is gone

    context.close()
    assert outside == [], f"portal pages tried to leave loopback: {outside}"
    assert len(list(shots.glob("*.png"))) == 12
