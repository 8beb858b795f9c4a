"""Alert webhooks of a tenant (generic JSON or Slack-compatible, filtered by severity and
type) and their deliveries: listed with attempts and errors, failed ones retried."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from bgp_orchestrator.alerts import deliveries, webhook_secrets
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.signing import secret_box
from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.conflict_schemas import (
    DeliveryOut,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookSecret,
    WebhookUpdate,
)
from bgp_orchestrator.api.deps import DatabaseDep, PagingDep, SettingsDep, TenantId
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.api.routes.common import ObjectId
from bgp_orchestrator.errors import ConfigConflict, NotFound
from bgp_orchestrator.peering.repository import WEBHOOKS, Where
from bgp_orchestrator.peering.schemas import Page

router = APIRouter(prefix="/api/v1/webhooks", tags=["alerts"], responses=documented(401, 422, 503))


def _values(body: WebhookCreate | WebhookUpdate, partial: bool) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=partial, exclude_none=partial)
    if "url" in data:
        data["url"] = str(data["url"])
    if "types" in data:
        data["types"] = [t.value for t in data["types"]]
    if "min_severity" in data:
        data["min_severity"] = data["min_severity"].value
    return data


async def _check_url(settings: Any, data: dict[str, Any]) -> None:
    """The URL must reach only public (or operator-allowed) addresses: 422 naming ``url``."""
    if "url" in data:
        await EgressPolicy.from_settings(settings).check(data["url"], "url")


async def _name_free(conn: Any, tenant_id: int, name: str, exclude: int | None) -> None:
    taken = await conn.fetchval(
        "SELECT id FROM webhooks WHERE tenant_id = $1 AND name = $2 AND id IS DISTINCT FROM $3",
        tenant_id,
        name,
        exclude,
    )
    if taken is not None:
        raise ConfigConflict(
            "webhook-exists", f"a webhook named {name!r} already exists (id {taken})", "name", name
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=documented(409),
    dependencies=[allow(Access.ADMIN)],
)
async def create_webhook(
    body: WebhookCreate, db: DatabaseDep, tenant_id: TenantId, settings: SettingsDep
) -> dict[str, Any]:
    """The answer carries the signing secret, once."""
    values = _values(body, partial=False)
    await _check_url(settings, values)
    box = secret_box(settings)
    async with db.transaction() as conn:
        await _name_free(conn, tenant_id, body.name, None)
        created = await WEBHOOKS.insert(conn, tenant_id, values)
        created["secret"] = await webhook_secrets.issue(conn, box, tenant_id, created["id"])
    return created


@router.post(
    "/{webhook_id}/secret",
    response_model=WebhookSecret,
    responses=documented(404),
    summary="Rotate the signing secret",
    dependencies=[allow(Access.ADMIN)],
)
async def rotate_webhook_secret(
    db: DatabaseDep,
    tenant_id: TenantId,
    settings: SettingsDep,
    webhook_id: Annotated[int, ObjectId],
) -> dict[str, Any]:
    """A new signing secret, shown once; deliveries from now on are signed with it."""
    box = secret_box(settings)
    async with db.transaction() as conn:
        secret = await webhook_secrets.issue(conn, box, tenant_id, webhook_id)
    if not secret:
        raise NotFound("webhook-not-found", f"no webhook with id {webhook_id}", "id", webhook_id)
    return {"id": webhook_id, "secret": secret}


@router.get(
    "",
    response_model=Page[WebhookOut],
    dependencies=[allow(Access.ADMIN)],
)
async def list_webhooks(db: DatabaseDep, tenant_id: TenantId, page: PagingDep) -> dict[str, Any]:
    async with db.connection() as conn:
        items, total = await WEBHOOKS.page(conn, tenant_id, Where(), page.limit, page.offset)
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses=documented(404),
    dependencies=[allow(Access.ADMIN)],
)
async def get_webhook(
    db: DatabaseDep, tenant_id: TenantId, webhook_id: Annotated[int, ObjectId]
) -> dict[str, Any]:
    async with db.connection() as conn:
        found = await WEBHOOKS.get(conn, tenant_id, webhook_id)
    if found is None:
        raise NotFound("webhook-not-found", f"no webhook with id {webhook_id}", "id", webhook_id)
    return found


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses=documented(404, 409),
    dependencies=[allow(Access.ADMIN)],
)
async def update_webhook(
    body: WebhookUpdate,
    db: DatabaseDep,
    tenant_id: TenantId,
    settings: SettingsDep,
    webhook_id: Annotated[int, ObjectId],
) -> dict[str, Any]:
    values = _values(body, partial=True)
    await _check_url(settings, values)
    async with db.transaction() as conn:
        if body.name is not None:
            await _name_free(conn, tenant_id, body.name, webhook_id)
        updated = await WEBHOOKS.update(conn, tenant_id, webhook_id, values)
    if updated is None:
        raise NotFound("webhook-not-found", f"no webhook with id {webhook_id}", "id", webhook_id)
    return updated


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(404),
    dependencies=[allow(Access.ADMIN)],
)
async def delete_webhook(
    db: DatabaseDep, tenant_id: TenantId, webhook_id: Annotated[int, ObjectId]
) -> None:
    async with db.transaction() as conn:
        if not await WEBHOOKS.delete(conn, tenant_id, webhook_id):
            raise NotFound(
                "webhook-not-found", f"no webhook with id {webhook_id}", "id", webhook_id
            )


async def _own_webhook(conn: Any, tenant_id: int, webhook_id: int) -> None:
    if await WEBHOOKS.get(conn, tenant_id, webhook_id) is None:
        raise NotFound("webhook-not-found", f"no webhook with id {webhook_id}", "id", webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    responses=documented(404),
    dependencies=[allow(Access.ADMIN)],
)
async def list_deliveries(
    db: DatabaseDep,
    tenant_id: TenantId,
    page: PagingDep,
    webhook_id: Annotated[int, ObjectId],
    status: Annotated[
        list[DeliveryStatus] | None,
        Query(description="Only these (repeatable): pending, delivered, failed (given up)"),
    ] = None,
) -> dict[str, Any]:
    """The webhook's deliveries, newest first: attempts, last error, when given up."""
    async with db.connection() as conn:
        await _own_webhook(conn, tenant_id, webhook_id)
        items, total = await deliveries.page(
            conn, webhook_id, list(status or []), page.limit, page.offset
        )
    return {"items": items, "total": total, "limit": page.limit, "offset": page.offset}


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=documented(404, 409),
    summary="Send a failed delivery again",
    dependencies=[allow(Access.ADMIN)],
)
async def retry_delivery(
    db: DatabaseDep,
    tenant_id: TenantId,
    webhook_id: Annotated[int, ObjectId],
    delivery_id: Annotated[int, ObjectId],
) -> dict[str, Any]:
    """Queue a given-up delivery again, due now, with a fresh set of attempts."""
    async with db.transaction() as conn:
        await _own_webhook(conn, tenant_id, webhook_id)
        found = await deliveries.get(conn, webhook_id, delivery_id)
        if found is None:
            raise NotFound(
                "delivery-not-found",
                f"webhook {webhook_id} has no delivery with id {delivery_id}",
                "delivery_id",
                delivery_id,
            )
        if not await deliveries.retry(conn, webhook_id, delivery_id):
            raise ConfigConflict(
                "delivery-not-failed",
                f"delivery {delivery_id} is {found['status']}; only failed deliveries are "
                "retried (pending ones are retried by themselves)",
                "status",
                found["status"],
            )
        retried = await deliveries.get(conn, webhook_id, delivery_id)
    assert retried is not None
    return retried
