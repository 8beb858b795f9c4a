"""Portal pieces that are pure functions: proration, plan periods, charts, CSRF, usage counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bgp_orchestrator.portal import billing
from bgp_orchestrator.portal.charts import bar_chart
from bgp_orchestrator.portal.sessions import csrf_token, csrf_valid
from bgp_orchestrator.usage.recorder import UsageRecorder, tenants_of_sessions, utc_day
from bgp_orchestrator.usage.sessions import SessionUsage

STARTER, TEAM = billing.PLANS["starter"], billing.PLANS["team"]


def test_proration_credits_the_rest_of_the_month_and_charges_the_new_plan() -> None:
    # 16 Nov 00:00 UTC: 15 of November's 30 days are left.
    change = billing.proration(STARTER, TEAM, datetime(2026, 11, 16, tzinfo=UTC))
    assert change.remaining_share == Decimal("0.5")
    assert change.credit == Decimal("24.50")
    assert change.charge == Decimal("149.50")
    assert change.net == Decimal("125.00")


def test_plan_periods_of_a_month_with_a_change_add_up_to_the_month() -> None:
    start, end = billing.month_bounds(date(2026, 11, 1))
    history = [
        {"plan": "starter", "started_at": datetime(2026, 10, 3, tzinfo=UTC)},
        {"plan": "team", "started_at": datetime(2026, 11, 11, tzinfo=UTC)},
    ]
    spans = billing.periods(history, start, end, end - start)
    assert [s.plan.key for s in spans] == ["starter", "team"]
    assert spans[0].share == Decimal(10) / Decimal(30)
    assert sum(s.share for s in spans) == 1


def test_months_run_from_the_tenants_first_newest_first() -> None:
    months = billing.months(datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    assert months == [date(2026, 12, 1), date(2026, 11, 1), date(2026, 10, 1)]


def test_bar_chart_has_one_bar_per_day_and_escapes_its_label() -> None:
    days = [(date(2026, 11, 1) + timedelta(days=i), i * 10) for i in range(5)]
    svg = str(bar_chart(days, "calls <per> day"))
    assert svg.count('class="bar"') == 5
    assert "calls &lt;per&gt; day" in svg and "<per>" not in svg
    assert "Thu 05 Nov: 40" in svg


def test_csrf_token_is_per_session_and_compared_exactly() -> None:
    session: dict[str, object] = {}
    token = csrf_token(session)
    assert csrf_token(session) == token
    assert csrf_valid(session, token)
    assert not csrf_valid(session, token + "x")
    assert not csrf_valid(session, None)
    assert not csrf_valid({}, token)


def test_usage_counts_accumulate_per_tenant_day_and_metric() -> None:
    now = [datetime(2026, 12, 1, 23, 59, tzinfo=UTC).timestamp()]
    usage = UsageRecorder(None, clock=lambda: now[0])
    usage.add(1, "api_calls")
    usage.add(1, "api_calls", 2)
    usage.add(2, "api_calls")
    now[0] += 120  # past midnight UTC: a new day's row
    usage.add(1, "api_calls")
    assert usage.pending == 3
    assert utc_day(now[0]) == date(2026, 12, 2)


def test_updates_count_for_every_tenant_with_a_session_to_the_peer() -> None:
    usage = SessionUsage(db=None)  # type: ignore[arg-type]  # record() does no I/O
    usage._tenants = {"192.0.2.1": [1, 2], "198.51.100.1": [3]}
    usage.record(
        [
            {"session_id": "exabgp|192.0.2.1", "announcements": 5, "withdrawals": 1},
            {"session_id": "rrc00|198.51.100.1", "announcements": 0, "withdrawals": 0},
            {"session_id": "exabgp|203.0.113.9", "announcements": 4, "withdrawals": 0},
        ]
    )
    assert tenants_of_sessions(usage._tenants, {"192.0.2.1": 6}) == {1: 6, 2: 6}
    assert usage.recorder.pending == 2  # tenants 1 and 2; the unknown peer waits
    assert dict(usage._unmatched) == {"203.0.113.9": 4}


async def test_the_serve_deployment_builds_the_portal_in_the_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a replica does: construct the deployment class, then build its ASGI app
    (no Ray started: the predictor handle is only looked up on first use)."""
    monkeypatch.setenv("BGPO_DATA_DIR", str(tmp_path))
    from deployments.portal import Portal

    cls = Portal.func_or_class
    replica = cls.__new__(cls)
    await cls.__init__(replica)  # Serve's ingress makes __init__ a coroutine
    app = replica.__serve_build_asgi_app__()
    assert type(app.state.predictor).__name__ == "PredictorHandle"
    assert app.url_path_for("dashboard") == "/"
    with pytest.raises(RuntimeError, match="not finished starting"):
        await replica.check_health()  # the lifespan has not opened the database yet
