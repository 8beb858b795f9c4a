"""The dashboard: the tenant's sessions with their flap risk, and its live conflicts."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from bgp_orchestrator.detection.conflict import Severity
from bgp_orchestrator.peering import repository as repo
from bgp_orchestrator.peering.repository import Where
from bgp_orchestrator.portal.web import Predictor, User, db_of, render
from bgp_orchestrator.storage import conflicts as conflict_store

log = logging.getLogger(__name__)
router = APIRouter()

#: Collector name of the tenant's own sessions (the ExaBGP collector's updates).
COLLECTOR = "exabgp"


async def flap_risk(
    predictor: Predictor | None, sessions: list[dict[str, Any]]
) -> tuple[dict[int, dict[str, Any]], str]:
    """Flap probability per session id, and a note when there is none to show."""
    if not sessions:
        return {}, ""
    if predictor is None:
        return {}, "The flap predictor is not deployed in this stack."
    ids = [f"{COLLECTOR}|{s['peer_address']}" for s in sessions]
    try:
        answers = orjson.loads(await predictor.predict_json(ids))
    except Exception as exc:  # the predictor app down: the page still renders
        log.warning("flap prediction for the dashboard failed: %s", exc)
        return {}, f"The flap predictor does not answer ({type(exc).__name__})."
    return {int(s["id"]): a for s, a in zip(sessions, answers, strict=False)}, ""


@router.get("/", name="dashboard")
async def dashboard(request: Request, user: User) -> Response:
    async with db_of(request).connection() as conn:
        sessions, session_total = await repo.SESSIONS.page(conn, user.tenant_id, Where(), 200, 0)
        live, live_total = await conflict_store.page(
            conn, user.tenant_id, "tenant", ["state = 'ongoing'"], [], 50, 0
        )
        by_severity = {
            r["severity"]: r["n"]
            for r in await conn.fetch(
                "SELECT severity, count(*) AS n FROM conflicts "
                "WHERE tenant_id = $1 AND state = 'ongoing' GROUP BY severity",
                user.tenant_id,
            )
        }
        prefix_total = await conn.fetchval(
            "SELECT count(*) FROM prefixes WHERE tenant_id = $1", user.tenant_id
        )
    risk, risk_note = await flap_risk(request.app.state.predictor, sessions)
    return render(
        request,
        "dashboard.html",
        user,
        nav="dashboard",
        sessions=sessions,
        session_total=session_total,
        prefix_total=prefix_total,
        live=live,
        live_total=live_total,
        by_severity=by_severity,
        severities=[s.value for s in reversed(Severity)],
        risk=risk,
        risk_note=risk_note,
    )
