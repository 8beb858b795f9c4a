"""The portal over HTTP against the real OIDC provider process: sign-in with PKCE,
sessions, CSRF, tenant isolation, usage counting, invoices, RP-initiated sign-out."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from tests.integration.portal_stack import DEMO_ADMIN, DEMO_VIEWER, PortalStack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalStack]:
    yield from start_stack(database_url, tmp_path_factory.mktemp("portal"))


@pytest.fixture(scope="module", autouse=True)
def tenants(stack: PortalStack) -> None:
    stack.sql("TRUNCATE tenants RESTART IDENTITY CASCADE")
    stack.sql("INSERT INTO tenants (slug, name) VALUES ('demo', 'Demo'), ('other', 'Other Net')")


@contextmanager
def sign_in(stack: PortalStack, sub: str = DEMO_ADMIN) -> Iterator[httpx.Client]:
    """The browser's path through the authorization-code flow, one redirect at a time."""
    with httpx.Client(base_url=stack.portal.url, follow_redirects=False, timeout=10) as client:
        yield _signed_in(stack, client, sub)


def _signed_in(stack: PortalStack, client: httpx.Client, sub: str) -> httpx.Client:
    r = client.get("/portal/")
    assert r.status_code == 303 and r.headers["location"].endswith("/portal/login")
    r = client.get("/portal/login")
    assert r.status_code == 302
    authorize = r.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert authorize.startswith(stack.oidc.url)
    r = httpx.post(authorize, data={"sub": sub}, follow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    r = client.get(r.headers["location"])
    assert r.status_code == 303, r.text
    assert r.headers["location"].endswith("/portal/")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/portal" in cookie
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_sign_in_shows_the_tenants_dashboard(stack: PortalStack) -> None:
    with sign_in(stack) as client:
        r = client.get("/portal/")
        assert r.status_code == 200
        assert "Demo Admin" in r.text and "Live conflicts" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        # the cookie holds a signed id, never the session's data
        value = client.cookies["bgpo_portal"]
        assert "Demo" not in value and "." in value
        rows = stack.sql("SELECT data::text FROM portal_sessions")
        assert any("admin@demo.example" in r[0] for r in rows)


def test_a_forged_cookie_is_a_new_anonymous_session(stack: PortalStack) -> None:
    with sign_in(stack) as client:
        sid, _, _ = client.cookies["bgpo_portal"].rpartition(".")
        client.cookies.set("bgpo_portal", f"{sid}.forged", domain="127.0.0.1", path="/portal")
        r = client.get("/portal/")
        assert r.status_code == 303 and r.headers["location"].endswith("/portal/login")


def test_forms_need_the_sessions_csrf_token(stack: PortalStack) -> None:
    with sign_in(stack) as client:
        form = {"subject": "Leak via AS64511", "body": "since 10:00 UTC", "priority": "high"}
        r = client.post("/portal/tickets", data=form)
        assert r.status_code == 403 and "CSRF" in r.text
        r = client.post("/portal/tickets", data={**form, "csrf": "not-the-token"})
        assert r.status_code == 403
        token = csrf_of(client.get("/portal/tickets").text)
        r = client.post("/portal/tickets", data={**form, "csrf": token})
        assert r.status_code == 303
        ticket = r.headers["location"]
        page = client.get(ticket).text
        assert "Leak via AS64511" in page and "since 10:00 UTC" in page and "new → open" in page


def test_another_tenants_ticket_is_not_found(stack: PortalStack) -> None:
    (row,) = stack.sql(
        "INSERT INTO support_tickets (tenant_id, subject, opened_by) "
        "SELECT id, 'secret of other', 'x' FROM tenants WHERE slug = 'other' RETURNING id"
    )
    with sign_in(stack) as client:
        r = client.get(f"/portal/tickets/{row['id']}")
        assert r.status_code == 404 and "secret of other" not in r.text
        token = csrf_of(client.get("/portal/tickets").text)
        r = client.post(f"/portal/tickets/{row['id']}/comments", data={"body": "hi", "csrf": token})
        assert r.status_code == 404
        assert "secret of other" not in client.get("/portal/tickets").text


def test_a_viewer_cannot_change_the_plan(stack: PortalStack) -> None:
    with sign_in(stack, DEMO_VIEWER) as client:
        token = csrf_of(client.get("/portal/billing").text)
        r = client.post("/portal/billing/plan", data={"plan": "team", "csrf": token})
        assert r.status_code == 403 and "admin role" in r.text


def test_api_calls_are_counted_for_the_tenant(stack: PortalStack) -> None:
    def counted() -> int:
        rows = stack.sql(
            "SELECT value FROM usage_daily u JOIN tenants t ON t.id = u.tenant_id "
            "WHERE t.slug = 'demo' AND metric = 'api_calls' AND day = current_date"
        )
        return int(rows[0]["value"]) if rows else 0

    before = counted()
    with httpx.Client(base_url=stack.api.url, headers={"X-Tenant": "demo"}) as api:
        for _ in range(7):
            assert api.get("/api/v1/sessions").status_code == 200
    deadline = time.monotonic() + 10
    while counted() < before + 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted() == before + 7
    with sign_in(stack) as client:
        page = client.get("/portal/usage?days=7").text
        assert '<svg class="chart"' in page and "API calls" in page


def test_invoice_pdf_and_plan_change_with_proration(stack: PortalStack) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    with sign_in(stack) as client:
        billing = client.get("/portal/billing").text
        assert "net $" in billing
        token = csrf_of(billing)
        r = client.post("/portal/billing/plan", data={"plan": "team", "csrf": token})
        assert r.status_code == 303
        assert "Plan changed to Team" in client.get("/portal/billing").text
        page = client.get(f"/portal/invoices/{month}").text
        assert "Starter plan" in page and "Team plan" in page and 'id="invoice-total"' in page
        pdf = client.get(f"/portal/invoices/{month}.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        assert client.get("/portal/invoices/1999-01").status_code == 404
        assert client.get("/portal/invoices/not-a-month").status_code == 404


def test_sign_out_ends_the_session_at_the_provider(stack: PortalStack) -> None:
    with sign_in(stack) as client:
        token = csrf_of(client.get("/portal/").text)
        r = client.post("/portal/logout", data={"csrf": token})
        assert r.status_code == 303
        end = urlsplit(r.headers["location"])
        assert f"{end.scheme}://{end.netloc}" == stack.oidc.url
        query = parse_qs(end.query)
        assert query["post_logout_redirect_uri"][0].endswith("/portal/signed-out")
        assert query["id_token_hint"]
        assert client.get("/portal/").status_code == 303  # signed out here


def test_data_dir_keeps_the_generated_session_secret(stack: PortalStack) -> None:
    path = Path(stack.settings.data_dir) / "portal_session_secret"
    assert path.stat().st_mode & 0o777 == 0o600


class ScoringPredictor:
    """Stands in for the predictor app (whose answers need a trained model and live
    features): scores each session by its last address octet, in the app's shape."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def predict_json(self, session_ids: list[str]) -> bytes:
        self.asked.append(session_ids)
        out = []
        for sid in session_ids:
            last = int(sid.rsplit(".", 1)[1])
            out.append(
                {"session_id": sid, "error": "no features"}
                if last > 100
                else {"session_id": sid, "probability": last / 100, "model_version": 1}
            )
        return orjson.dumps(out)


def test_dashboard_shows_live_conflicts_and_flap_risk(stack: PortalStack) -> None:
    with httpx.Client(base_url=stack.api.url, headers={"X-Tenant": "demo"}) as api:
        api.post("/api/v1/asns", json={"asn": 64500})
        for address, peer in (("192.0.2.63", 64501), ("192.0.2.200", 64502)):
            r = api.post(
                "/api/v1/sessions",
                json={"local_asn": 64500, "peer_asn": peer, "peer_address": address,
                      "interconnect": "ixp", "ixp_name": "DE-CIX"},
            )  # fmt: skip
            assert r.status_code == 201, r.text
    now = datetime.now(UTC)
    stack.sql(
        "INSERT INTO conflicts (key, tenant_id, type, severity, prefix, origin_asn, as_path, "
        "peers, first_seen, last_seen) SELECT k, t.id, 'exact-prefix-hijack', 'critical', "
        "'203.0.113.0/24', 64666, '64501 64666', '{exabgp|192.0.2.63}', $1, $1 "
        "FROM tenants t, unnest($2::text[]) AS k WHERE t.slug = $3",
        now,
        ["demo-hijack"],
        "demo",
    )
    stack.sql(
        "INSERT INTO conflicts (key, tenant_id, type, severity, prefix, first_seen, last_seen) "
        "SELECT 'other-leak', id, 'route-leak', 'high', '198.18.0.0/24', $1, $1 "
        "FROM tenants WHERE slug = 'other'",
        now,
    )
    predictor = ScoringPredictor()
    stack.portal_app.state.predictor = predictor
    try:
        with sign_in(stack) as client:
            page = client.get("/portal/").text
    finally:
        stack.portal_app.state.predictor = None
    assert "203.0.113.0/24" in page and "AS64666" in page
    assert "198.18.0.0/24" not in page  # the other tenant's conflict
    assert ">63%</span>" in page and "no features yet" in page
    assert predictor.asked == [["exabgp|192.0.2.63", "exabgp|192.0.2.200"]]
