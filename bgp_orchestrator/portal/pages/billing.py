"""Plans (view, change with the proration shown) and invoices (page and PDF)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bgp_orchestrator.auth.principal import Role
from bgp_orchestrator.errors import InvalidInput, NotFound
from bgp_orchestrator.portal import billing
from bgp_orchestrator.portal.auth import PortalUser
from bgp_orchestrator.portal.pdf import invoice_pdf
from bgp_orchestrator.portal.web import User, back, db_of, form_of, need, render, text
from bgp_orchestrator.usage.recorder import METRICS

router = APIRouter()


@router.get("/billing", name="billing")
async def billing_page(request: Request, user: User) -> Response:
    now = datetime.now(UTC)
    async with db_of(request).connection() as conn:
        history = await billing.plan_history(conn, user.tenant_id)
    current = billing.PLANS.get(history[-1]["plan"], billing.PLANS[billing.DEFAULT_PLAN])
    changes = {
        key: billing.proration(current, plan, now)
        for key, plan in billing.PLANS.items()
        if key != current.key
    }
    return render(
        request, "billing.html", user, nav="billing", plans=billing.PLANS, current=current,
        history=history[::-1], changes=changes, labels=billing.METRIC_LABELS, metrics=METRICS,
    )  # fmt: skip


@router.post("/billing/plan", name="change_plan")
async def change_plan(request: Request, user: User) -> Response:
    form = await form_of(request)
    need(user, Role.ADMIN)
    try:
        async with db_of(request).connection() as conn:
            plan = await billing.change_plan(conn, user.tenant_id, text(form, "plan"), user.name)
    except InvalidInput as exc:
        return back(request, "billing", "error", exc.message)
    return back(request, "billing", "ok", f"Plan changed to {plan.name}, effective now.")


@router.get("/invoices", name="invoices")
async def invoice_list(request: Request, user: User) -> Response:
    now = datetime.now(UTC)
    async with db_of(request).connection() as conn:
        created = await conn.fetchval(
            "SELECT created_at FROM tenants WHERE id = $1", user.tenant_id
        )
        items = [
            await billing.invoice(conn, user.tenant_id, month, now)
            for month in billing.months(created, now)
        ]
    return render(request, "invoices.html", user, nav="invoices", items=items)


async def _invoice(request: Request, user: PortalUser, month: str) -> billing.Invoice:
    async with db_of(request).connection() as conn:
        try:
            return await billing.invoice(conn, user.tenant_id, billing.parse_month(month))
        except InvalidInput as exc:
            raise NotFound(exc.code, exc.message, "month", month) from None


@router.get("/invoices/{month}.pdf", name="invoice_pdf")
async def invoice_download(request: Request, user: User, month: str) -> Response:
    found = await _invoice(request, user, month)
    return Response(
        invoice_pdf(found),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{found.number}.pdf"'},
    )


@router.get("/invoices/{month}", name="invoice")
async def invoice_page(request: Request, user: User, month: str) -> Response:
    found = await _invoice(request, user, month)
    return render(request, "invoice.html", user, nav="invoices", invoice=found, month=month)
