"""The tenant's own autonomous systems."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import PagingDep, PeeringDep
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId, like_pattern
from bgp_orchestrator.peering.fields import ASN, SearchText
from bgp_orchestrator.peering.repository import Where
from bgp_orchestrator.peering.schemas import AsnCreate, AsnUpdate, AutonomousSystem, Page

router = APIRouter(
    prefix="/api/v1/asns", tags=["autonomous systems"], responses=documented(401, 422, 503)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=documented(409),
    response_model=AutonomousSystem,
    dependencies=[allow(Access.OPERATOR)],
)
async def create_asn(body: AsnCreate, svc: PeeringDep) -> dict[str, Any]:
    return await svc.create_asn(body.model_dump())


@router.get(
    "",
    response_model=Page[AutonomousSystem],
    dependencies=[allow(Access.VIEWER)],
)
async def list_asns(
    svc: PeeringDep,
    page: PagingDep,
    asn: Annotated[ASN | None, Query(description="Exact ASN")] = None,
    q: Annotated[
        SearchText | None, Query(max_length=100, description="Name contains (case-insensitive)")
    ] = None,
) -> dict[str, Any]:
    where = Where()
    if asn is not None:
        where.add("asn = {}", asn)
    if q:
        where.add("name ILIKE {}", like_pattern(q))
    items, total = await svc.list_asns(where, page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get(
    "/{asn_id}",
    responses=documented(404),
    response_model=AutonomousSystem,
    dependencies=[allow(Access.VIEWER)],
)
async def get_asn(svc: PeeringDep, asn_id: Annotated[int, ObjectId]) -> dict[str, Any]:
    return await svc.get_asn(asn_id)


@router.patch(
    "/{asn_id}",
    responses=documented(404, 409),
    response_model=AutonomousSystem,
    dependencies=[allow(Access.OPERATOR)],
)
async def update_asn(
    body: AsnUpdate, svc: PeeringDep, asn_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return await svc.update_asn(asn_id, changes)


@router.delete(
    "/{asn_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404, 409),
    dependencies=[allow(Access.OPERATOR)],
)
async def delete_asn(svc: PeeringDep, asn_id: Annotated[int, ObjectId]) -> None:
    await svc.delete_asn(asn_id)
