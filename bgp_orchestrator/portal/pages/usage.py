"""Usage per day with charts: API calls, updates processed, sessions and prefixes monitored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.portal import charts
from bgp_orchestrator.portal.billing import METRIC_LABELS
from bgp_orchestrator.portal.web import User, db_of, render
from bgp_orchestrator.usage import recorder
from bgp_orchestrator.usage.recorder import METRICS

router = APIRouter()


@router.get("/usage", name="usage")
async def usage(request: Request, user: User, days: int = 30) -> Response:
    if days not in (7, 30, 90):
        raise InvalidInput("invalid-days", "days must be 7, 30 or 90", "days", days)
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    async with db_of(request).connection() as conn:
        series = await recorder.daily(conn, user.tenant_id, first, last)
    panels = [
        {
            "metric": metric,
            "label": METRIC_LABELS[metric],
            "chart": charts.bar_chart(series[metric], METRIC_LABELS[metric]),
            "today": series[metric][-1][1],
            "total": sum(v for _, v in series[metric]),
            "peak": max(v for _, v in series[metric]),
            "counter": metric in recorder.COUNTERS,
        }
        for metric in METRICS
    ]
    return render(
        request, "usage.html", user, nav="usage", panels=panels, days=days, first=first,
        last=last,
    )  # fmt: skip
