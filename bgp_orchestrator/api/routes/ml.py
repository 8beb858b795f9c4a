"""Flap prediction: predictions per session, and the model registry."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Protocol

import orjson
from fastapi import APIRouter, Path, Request, Response

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import (
    DatabaseDep,
    PagingDep,
    SessionScope,
    SettingsDep,
    TenantId,
)
from bgp_orchestrator.api.ml_schemas import ModelOut, PredictionsOut, PredictRequest
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.errors import NotFound, ServiceUnavailable
from bgp_orchestrator.flaps import ownership, registry
from bgp_orchestrator.peering.schemas import Page

router = APIRouter(prefix="/api/v1/ml", tags=["flap prediction"], responses=documented(401, 503))


class Predictor(Protocol):
    """What the API needs of a predictor: the Serve deployment's handle, or the
    in-process predictor under plain ASGI servers and in tests."""

    async def predict_json(self, session_ids: list[str]) -> bytes:
        """The answers, one per session in order, as a JSON array."""
        ...


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor | None = getattr(request.app.state, "predictor", None)
    if predictor is None:
        raise ServiceUnavailable(
            "predictor-unavailable", "the flap predictor is not deployed in this stack"
        )
    return predictor


Version = Annotated[int, Path(ge=1, le=2_147_483_647, description="Model version")]


@router.post(
    "/predict",
    response_model=PredictionsOut,
    responses=documented(404, 422),
    dependencies=[allow(Access.READER)],
)
async def predict(
    body: PredictRequest,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    scope: SessionScope,
) -> Response:
    """Flap probability of each of your sessions within the horizon, with the model
    version and the features used (1-10,000 sessions ``collector|peer address``; yours
    when one of your peering sessions has that peer address). Sessions that are not
    yours are listed in ``not_found`` and never predicted; when none is, the answer is
    404. A session without features answers 404 when it is the only one asked for; in
    a batch it carries an ``error`` instead. The platform administrator reads any
    session."""
    async with db.connection() as conn:
        owned = await ownership.owned_sessions(conn, scope, body.sessions)
    if not owned:
        raise ownership.not_yours(body.sessions)
    predictor = await get_predictor(request)
    ids = [sid for sid in body.sessions if sid in owned]
    answers = await predictor.predict_json(ids)
    if len(body.sessions) == 1:
        (answer,) = orjson.loads(answers)
        if answer.get("error"):
            raise NotFound("session-not-predictable", answer["error"], "sessions", body.sessions[0])
    # The predictor encodes its answers in PredictionsOut's shape (the tests check
    # it); they are spliced in as they are, since decoding and validating 10,000
    # of them again would cost more than the prediction.
    rest = orjson.dumps(
        {
            "not_found": [sid for sid in body.sessions if sid not in owned],
            "horizon_s": settings.flap_horizon_s,
            "withdraw_share": settings.flap_withdraw_share,
        }
    )
    body_json = b'{"predictions":' + answers + b"," + rest[1:]
    return Response(body_json, media_type="application/json")


@router.get(
    "/models",
    response_model=Page[ModelOut],
    dependencies=[allow(Access.VIEWER)],
)
async def list_models(db: DatabaseDep, page: PagingDep, _: TenantId) -> dict[str, Any]:
    async with db.connection() as conn:
        items = await registry.models(conn, page.limit, page.offset)
        total = await registry.count(conn)
    return {
        "items": [asdict(m) for m in items],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get(
    "/models/{version}",
    response_model=ModelOut,
    responses=documented(404),
    dependencies=[allow(Access.VIEWER)],
)
async def get_model(version: Version, db: DatabaseDep, _: TenantId) -> dict[str, Any]:
    async with db.connection() as conn:
        return asdict(await registry.get(conn, version))


@router.post(
    "/models/{version}/activate",
    response_model=ModelOut,
    responses=documented(404),
    dependencies=[allow(Access.PLATFORM_ADMIN)],
)
async def activate_model(version: Version, db: DatabaseDep) -> dict[str, Any]:
    """Make this version the one every predictor replica serves (within
    ``BGPO_MODEL_POLL_S``); it is loaded next to the current model and swapped in
    without failing requests. A version that fails its checks is not served."""
    async with db.connection() as conn:
        return asdict(await registry.activate(conn, version))
