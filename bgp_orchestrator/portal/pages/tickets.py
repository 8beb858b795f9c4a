"""Support tickets: list, open, read, comment, change status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.portal import tickets
from bgp_orchestrator.portal.web import User, back, db_of, form_of, render, text

router = APIRouter(prefix="/tickets")


@router.get("", name="tickets")
async def ticket_list(request: Request, user: User, status: str = "") -> Response:
    if status not in ("", *tickets.STATUSES):
        raise InvalidInput("invalid-status", "status must be open, waiting or closed", "status")
    async with db_of(request).connection() as conn:
        items = await tickets.tickets(conn, user.tenant_id, status or None)
    return render(
        request, "tickets.html", user, nav="tickets", items=items, status=status,
        priorities=tickets.PRIORITIES,
    )  # fmt: skip


@router.post("", name="open_ticket")
async def open_ticket(request: Request, user: User) -> Response:
    form = await form_of(request)
    try:
        async with db_of(request).connection() as conn:
            ticket_id = await tickets.open_ticket(
                conn, user.tenant_id, text(form, "subject"), text(form, "body"),
                text(form, "priority") or "normal", user.name,
            )  # fmt: skip
    except InvalidInput as exc:
        return back(request, "tickets", "error", exc.message)
    return back(request, "ticket", "ok", f"Ticket #{ticket_id} opened.", ticket_id=ticket_id)


@router.get("/{ticket_id}", name="ticket")
async def ticket_page(request: Request, user: User, ticket_id: int) -> Response:
    async with db_of(request).connection() as conn:
        found = await tickets.ticket(conn, user.tenant_id, ticket_id)
    return render(request, "ticket.html", user, nav="tickets", ticket=found)


@router.post("/{ticket_id}/comments", name="comment")
async def add_comment(request: Request, user: User, ticket_id: int) -> Response:
    form = await form_of(request)
    try:
        async with db_of(request).connection() as conn:
            await tickets.comment(conn, user.tenant_id, ticket_id, text(form, "body"), user.name)
    except InvalidInput as exc:
        return back(request, "ticket", "error", exc.message, ticket_id=ticket_id)
    return back(request, "ticket", "ok", "Comment added.", ticket_id=ticket_id)


@router.post("/{ticket_id}/status", name="ticket_status")
async def ticket_status(request: Request, user: User, ticket_id: int) -> Response:
    form = await form_of(request)
    status = text(form, "status")
    try:
        async with db_of(request).connection() as conn:
            changed = await tickets.set_status(conn, user.tenant_id, ticket_id, status, user.name)
    except InvalidInput as exc:
        return back(request, "ticket", "error", exc.message, ticket_id=ticket_id)
    message = f"Ticket is now {status}." if changed else f"Ticket was {status} already."
    return back(request, "ticket", "ok", message, ticket_id=ticket_id)
