"""Upstream, peer and customer ASNs of the tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import PagingDep, PeeringDep
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId
from bgp_orchestrator.peering.fields import ASN
from bgp_orchestrator.peering.repository import Where
from bgp_orchestrator.peering.schemas import (
    Neighbor,
    NeighborCreate,
    NeighborUpdate,
    Page,
    Relationship,
)

router = APIRouter(
    prefix="/api/v1/neighbors", tags=["neighbour ASNs"], responses=documented(401, 422, 503)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=documented(409),
    response_model=Neighbor,
    dependencies=[allow(Access.OPERATOR)],
)
async def create_neighbor(body: NeighborCreate, svc: PeeringDep) -> dict[str, Any]:
    return await svc.create_neighbor(body.model_dump())


@router.get(
    "",
    response_model=Page[Neighbor],
    dependencies=[allow(Access.VIEWER)],
)
async def list_neighbors(
    svc: PeeringDep,
    page: PagingDep,
    asn: Annotated[ASN | None, Query()] = None,
    relationship: Annotated[Relationship | None, Query()] = None,
) -> dict[str, Any]:
    where = Where()
    if asn is not None:
        where.add("asn = {}", asn)
    if relationship is not None:
        where.add("relationship = {}", relationship)
    items, total = await svc.list_neighbors(where, page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get(
    "/{neighbor_id}",
    responses=documented(404),
    response_model=Neighbor,
    dependencies=[allow(Access.VIEWER)],
)
async def get_neighbor(svc: PeeringDep, neighbor_id: Annotated[int, ObjectId]) -> dict[str, Any]:
    return await svc.get_neighbor(neighbor_id)


@router.patch(
    "/{neighbor_id}",
    responses=documented(404, 409),
    response_model=Neighbor,
    dependencies=[allow(Access.OPERATOR)],
)
async def update_neighbor(
    body: NeighborUpdate, svc: PeeringDep, neighbor_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return await svc.update_neighbor(neighbor_id, changes)


@router.delete(
    "/{neighbor_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404),
    dependencies=[allow(Access.OPERATOR)],
)
async def delete_neighbor(svc: PeeringDep, neighbor_id: Annotated[int, ObjectId]) -> None:
    await svc.delete_neighbor(neighbor_id)
