"""Anomalies in the per-session metric series: list, detail, summary, detect now."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from bgp_orchestrator.anomaly import repository
from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.fitting import fit_frame
from bgp_orchestrator.anomaly.series import ANOMALY_METRICS, SeriesKey
from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.anomaly_schemas import (
    AnomalyDetail,
    AnomalyOut,
    DetectOut,
    DetectRequest,
    Severity,
    SummaryOut,
)
from bgp_orchestrator.api.deps import DatabaseDep, PagingDep, TenantId
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.errors import InvalidInput, NotFound
from bgp_orchestrator.peering.schemas import Page

router = APIRouter(prefix="/api/v1/anomalies", tags=["anomalies"], responses=documented(401, 503))

AnomalyId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Anomaly id")]
Metric = Annotated[
    str | None, Query(description=f"one of {', '.join(ANOMALY_METRICS)}", max_length=100)
]


Session = Annotated[str | None, Query(min_length=1, max_length=300, description="collector|peer")]
PeerAsn = Annotated[int | None, Query(ge=0, le=4_294_967_295, description="peer AS number")]
MinSeverity = Annotated[Severity | None, Query(description="this severity and above")]
Since = Annotated[datetime | None, Query(description="anomalies ending at or after (ISO 8601)")]
Until = Annotated[datetime | None, Query(description="anomalies starting before (ISO 8601)")]


async def anomaly_filter(
    session: Session = None,
    peer_asn: PeerAsn = None,
    metric: Metric = None,
    severity: MinSeverity = None,
    since: Since = None,
    until: Until = None,
) -> repository.AnomalyFilter:
    """The query's filters, shared by the list and the summary."""
    if metric is not None and metric not in ANOMALY_METRICS:
        raise InvalidInput(
            "unknown-metric",
            f"metric must be one of {', '.join(ANOMALY_METRICS)}",
            "metric",
            metric,
        )
    if since is not None and until is not None and since >= until:
        raise InvalidInput("bad-time-range", "since must be before until", "since", since)
    return repository.AnomalyFilter(session, peer_asn, metric, severity, since, until)


FilterDep = Annotated[repository.AnomalyFilter, Depends(anomaly_filter)]


@router.get(
    "",
    response_model=Page[AnomalyOut],
    responses=documented(422),
    dependencies=[allow(Access.VIEWER)],
)
async def list_anomalies(
    db: DatabaseDep,
    page: PagingDep,
    tenant_id: TenantId,
    where: FilterDep,
) -> dict[str, Any]:
    """Anomalies of your sessions, newest first, filtered by session, peer, metric, minimum severity
    and time range."""
    async with db.connection() as conn:
        items, total = await repository.list_anomalies(
            conn, tenant_id, where, limit=page.limit, offset=page.offset
        )
    return {
        "items": items,
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get(
    "/summary",
    response_model=SummaryOut,
    responses=documented(422),
    dependencies=[allow(Access.VIEWER)],
)
async def summary(
    db: DatabaseDep,
    tenant_id: TenantId,
    where: FilterDep,
    top: Annotated[int, Query(ge=1, le=100, description="peers in the top list")] = 10,
) -> dict[str, Any]:
    """Counts by severity and metric, the peers with most anomalies, the last run."""
    async with db.connection() as conn:
        return await repository.summary(conn, tenant_id, where, top)


@router.get(
    "/{anomaly_id}",
    response_model=AnomalyDetail,
    responses=documented(404),
    dependencies=[allow(Access.VIEWER)],
)
async def get_anomaly(
    anomaly_id: AnomalyId, db: DatabaseDep, tenant_id: TenantId
) -> dict[str, Any]:
    """One anomaly with the series around it and the model's band, for plotting."""
    async with db.connection() as conn:
        row = await repository.get(conn, tenant_id, anomaly_id)
    window = row.pop("series_window")
    points = [
        {
            "timestamp": datetime.fromtimestamp(ts, UTC),
            "actual": window["actual"][i],
            "expected": window["expected"][i],
            "lower": window["lower"][i],
            "upper": window["upper"][i],
        }
        for i, ts in enumerate(window["timestamps"])
    ]
    return {**row, "window": points}


@router.post(
    "/detect",
    response_model=DetectOut,
    responses=documented(404, 422),
    dependencies=[allow(Access.PLATFORM_ADMIN)],
)
async def detect(body: DetectRequest, request: Request, db: DatabaseDep) -> dict[str, Any]:
    """Fit the given series now (the same code as the fitting job) and store the
    anomalies found. Series without enough data are listed as skipped with the
    reason; if none of them has any point the answer is 404."""
    params = FitParams(
        engine=body.engine,
        model=body.model,
        season_length=body.season_length,
        k=body.sigma,
        alpha=body.alpha,
        resolution_s=body.resolution_s,
    )
    keys = [SeriesKey.parse(s) for s in body.series]
    store = await metric_store(request)
    end = datetime.now(UTC)
    frame = await store.read(
        start=end - timedelta(days=body.days),
        end=end,
        metrics=sorted({k.metric for k in keys}),
        sessions=sorted({k.session for k in keys}),
    )
    wanted = set(body.series)
    frame = frame[(frame["metric"] + "/" + frame["session"]).isin(wanted)]
    present = set(frame["metric"] + "/" + frame["session"])
    if not present:
        raise NotFound(
            "series-not-found",
            f"no points for these series in the last {body.days:g} days "
            f"(metric store: {store.describe()})",
            "series",
            body.series[0],
        )
    result = await asyncio.to_thread(fit_frame, frame, params)
    async with db.connection() as conn:
        ids = await repository.store_returning_ids(
            conn, result.anomalies, engine=params.engine, run_id=None
        )
        rows = [await repository.get(conn, None, i) for i in ids]
    skipped = [
        {"series": s.series_id, "reason": s.reason, "detail": s.detail} for s in result.skipped
    ] + [
        {"series": s, "reason": "no-data", "detail": f"no points in the last {body.days:g} days"}
        for s in body.series
        if s not in present
    ]
    return {
        "fitted": result.fitted,
        "skipped": skipped,
        "anomalies": [{k: v for k, v in row.items() if k != "series_window"} for row in rows],
    }


async def metric_store(request: Request) -> Any:
    """The app's metric store, opened on first use (closed by the app's lifespan)."""
    state = request.app.state
    if getattr(state, "metric_store", None) is None:
        from bgp_orchestrator.anomaly.store import open_metric_store

        state.metric_store = open_metric_store(state.settings)
    return state.metric_store
