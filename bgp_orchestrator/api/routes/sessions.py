"""BGP peering sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import PagingDep, PeeringDep
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId
from bgp_orchestrator.peering.fields import ASN, HostAddress, Prefix, SearchText
from bgp_orchestrator.peering.repository import Where
from bgp_orchestrator.peering.schemas import (
    AdminState,
    Afi,
    Interconnect,
    Page,
    Session,
    SessionCreate,
    SessionUpdate,
)

router = APIRouter(
    prefix="/api/v1/sessions", tags=["sessions"], responses=documented(401, 422, 503)
)

# Fields a PATCH may set back to null.
_NULLABLE = {
    "local_address",
    "peering_lan",
    "ixp_name",
    "max_prefixes",
    "import_policy",
    "export_policy",
    "md5_secret_ref",
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=documented(409),
    response_model=Session,
    dependencies=[allow(Access.OPERATOR)],
)
async def create_session(body: SessionCreate, svc: PeeringDep) -> dict[str, Any]:
    """Create a session; 409 when it contradicts stored configuration."""
    return await svc.create_session(body.model_dump())


@router.get(
    "",
    response_model=Page[Session],
    dependencies=[allow(Access.VIEWER)],
)
async def list_sessions(
    svc: PeeringDep,
    page: PagingDep,
    peer_asn: Annotated[ASN | None, Query()] = None,
    local_asn: Annotated[ASN | None, Query()] = None,
    afi: Annotated[Afi | None, Query(description="Address family")] = None,
    interconnect: Annotated[Interconnect | None, Query()] = None,
    admin_state: Annotated[AdminState | None, Query()] = None,
    ixp_name: Annotated[SearchText | None, Query(max_length=200)] = None,
    peer_address: Annotated[HostAddress | None, Query()] = None,
    within: Annotated[Prefix | None, Query(description="Peer address inside this prefix")] = None,
) -> dict[str, Any]:
    where = Where()
    if peer_asn is not None:
        where.add("peer_asn = {}", peer_asn)
    if local_asn is not None:
        where.add("local_asn = {}", local_asn)
    if afi is not None:
        where.add("afi = {}", int(afi))
    if interconnect is not None:
        where.add("interconnect = {}", interconnect)
    if admin_state is not None:
        where.add("admin_state = {}", admin_state)
    if ixp_name:
        where.add("ixp_name = {}", ixp_name)
    if peer_address is not None:
        where.add("peer_address = {}::inet", peer_address)
    if within is not None:
        where.add("peer_address <<= {}::cidr", within)
    items, total = await svc.list_sessions(where, page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get(
    "/{session_id}",
    responses=documented(404),
    response_model=Session,
    dependencies=[allow(Access.VIEWER)],
)
async def get_session(svc: PeeringDep, session_id: Annotated[int, ObjectId]) -> dict[str, Any]:
    return await svc.get_session(session_id)


@router.patch(
    "/{session_id}",
    responses=documented(404, 409),
    response_model=Session,
    dependencies=[allow(Access.OPERATOR)],
)
async def update_session(
    body: SessionUpdate, svc: PeeringDep, session_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    """Change some fields; the whole resulting session is checked again."""
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None or k in _NULLABLE
    }
    return await svc.update_session(session_id, changes)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404),
    dependencies=[allow(Access.OPERATOR)],
)
async def delete_session(svc: PeeringDep, session_id: Annotated[int, ObjectId]) -> None:
    await svc.delete_session(session_id)
