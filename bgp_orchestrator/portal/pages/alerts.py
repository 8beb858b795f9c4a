"""Alert preferences and the "send test alert" button."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.detection.conflict import ConflictType, Severity
from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.portal import alerting
from bgp_orchestrator.portal.web import User, back, db_of, form_of, need, render, text

router = APIRouter(prefix="/alerts")


@router.get("", name="alerts")
async def alerts_page(request: Request, user: User) -> Response:
    async with db_of(request).connection() as conn:
        prefs = await alerting.load(conn, user.tenant_id)
    return render(
        request, "alerts.html", user, nav="alerts", prefs=prefs,
        severities=[s.value for s in Severity], types=[t.value for t in ConflictType],
        email_enabled=request.app.state.dispatcher.mailer.enabled,
    )  # fmt: skip


@router.post("", name="save_alerts")
async def save_alerts(request: Request, user: User) -> Response:
    form = await form_of(request)
    need(user, Role.ADMIN)
    try:
        prefs = alerting.validated(
            text(form, "email"),
            text(form, "webhook_url"),
            text(form, "slack_url"),
            text(form, "min_severity"),
            [t for t in form.getlist("types") if isinstance(t, str)],
        )
        dispatcher = request.app.state.dispatcher
        async with db_of(request).connection() as conn:
            issued = await alerting.save(
                conn, user.tenant_id, prefs, user.name, dispatcher.egress, dispatcher.secrets
            )
    except InvalidInput as exc:
        return back(request, "alerts", "error", exc.message)
    message = "Alert preferences saved."
    for name, secret in issued.items():
        message += (
            f" Signing secret of {name} (shown once; verify the webhook-signature header "
            f"with it): {secret}"
        )
    return back(request, "alerts", "ok", message)


@router.post("/test", name="test_alert")
async def test_alert(request: Request, user: User) -> Response:
    await form_of(request)
    need(user, Role.OPERATOR)
    async with db_of(request).connection() as conn:
        prefs = await alerting.load(conn, user.tenant_id)
        if not (prefs.email or prefs.webhook_url or prefs.slack_url):
            return back(
                request, "alerts", "error", "Save an e-mail address, webhook or Slack URL first."
            )
        results = await alerting.send_test(
            request.app.state.dispatcher,
            request.app.state.http,
            conn,
            user.tenant_id,
            prefs,
            user.tenant_slug,
        )
    each = "; ".join(f"{channel}: {error or 'delivered'}" for channel, error in results)
    if any(error for _, error in results):
        return back(request, "alerts", "error", f"Test alert not delivered everywhere - {each}.")
    return back(request, "alerts", "ok", f"Test alert delivered - {each}.")
