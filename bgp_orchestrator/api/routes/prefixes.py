"""Owned and monitored prefixes."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import PagingDep, PeeringDep
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId
from bgp_orchestrator.peering.fields import ASN, NetworkOrAddress, Prefix
from bgp_orchestrator.peering.repository import Where
from bgp_orchestrator.peering.schemas import (
    Afi,
    MonitoredPrefix,
    Page,
    PrefixCreate,
    PrefixUpdate,
)

router = APIRouter(
    prefix="/api/v1/prefixes", tags=["prefixes"], responses=documented(401, 422, 503)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=documented(409),
    response_model=MonitoredPrefix,
    dependencies=[allow(Access.OPERATOR)],
)
async def create_prefix(body: PrefixCreate, svc: PeeringDep) -> dict[str, Any]:
    """Register a prefix; 409 when another tenant claims it with other origins."""
    values = body.model_dump()
    if values["max_length"] is None:
        values["max_length"] = ipaddress.ip_network(values["prefix"]).prefixlen
    return await svc.create_prefix(values)


@router.get(
    "",
    response_model=Page[MonitoredPrefix],
    dependencies=[allow(Access.VIEWER)],
)
async def list_prefixes(
    svc: PeeringDep,
    page: PagingDep,
    origin_asn: Annotated[ASN | None, Query(description="Authorised origin includes")] = None,
    afi: Annotated[Afi | None, Query(description="Address family")] = None,
    announced: Annotated[bool | None, Query()] = None,
    covers: Annotated[
        NetworkOrAddress | None, Query(description="Prefixes covering this prefix or address")
    ] = None,
    within: Annotated[Prefix | None, Query(description="Prefixes inside this prefix")] = None,
) -> dict[str, Any]:
    where = Where()
    if origin_asn is not None:
        where.add("origin_asns @> ARRAY[{}]::bigint[]", origin_asn)
    if afi is not None:
        where.add("afi = {}", int(afi))
    if announced is not None:
        where.add("announced = {}", announced)
    if covers is not None:
        where.add("prefix >>= {}::inet", covers)
    if within is not None:
        where.add("prefix <<= {}::cidr", within)
    items, total = await svc.list_prefixes(where, page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get(
    "/{prefix_id}",
    responses=documented(404),
    response_model=MonitoredPrefix,
    dependencies=[allow(Access.VIEWER)],
)
async def get_prefix(svc: PeeringDep, prefix_id: Annotated[int, ObjectId]) -> dict[str, Any]:
    return await svc.get_prefix(prefix_id)


@router.patch(
    "/{prefix_id}",
    responses=documented(404, 409),
    response_model=MonitoredPrefix,
    dependencies=[allow(Access.OPERATOR)],
)
async def update_prefix(
    body: PrefixUpdate, svc: PeeringDep, prefix_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return await svc.update_prefix(prefix_id, changes)


@router.delete(
    "/{prefix_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404),
    dependencies=[allow(Access.OPERATOR)],
)
async def delete_prefix(svc: PeeringDep, prefix_id: Annotated[int, ObjectId]) -> None:
    await svc.delete_prefix(prefix_id)
