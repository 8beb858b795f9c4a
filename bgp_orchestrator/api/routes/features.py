"""Flap features: read the online store, and materialize it now."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request, status

from bgp_orchestrator.api.access import Access, allow
from bgp_orchestrator.api.deps import DatabaseDep, SessionScope, SettingsDep
from bgp_orchestrator.api.ml_schemas import FeaturesOut, JobOut, SessionsRequest
from bgp_orchestrator.api.problems import documented
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.flaps import ownership
from bgp_orchestrator.flaps.features import FEATURES
from bgp_orchestrator.settings import Settings

router = APIRouter(prefix="/api/v1/features", tags=["flap prediction"], responses=documented(401))


class Launcher(Protocol):
    async def submit(self, entrypoint: str, name: str) -> str: ...


def _online_reader(request: Request, settings: Settings) -> Any:
    """The app's Feast store on the configured Redis (opened on first use)."""
    store = getattr(request.app.state, "feature_store", None)
    if store is None:
        if settings.redis_url is None:
            raise ServiceUnavailable(
                "online-store-unconfigured", "BGPO_REDIS_URL is not set: there is no online store"
            )
        from bgp_orchestrator.flaps.feature_store import open_store

        store = open_store(settings, settings.redis_url.get_secret_value())
        request.app.state.feature_store = store
    return store


async def get_launcher(request: Request, settings: SettingsDep) -> Launcher:
    launcher: Launcher | None = getattr(request.app.state, "jobs", None)
    if launcher is None:
        from bgp_orchestrator.stack.jobs_client import JobLauncher

        launcher = JobLauncher(settings)
        request.app.state.jobs = launcher
    return launcher


@router.post(
    "/serve",
    response_model=FeaturesOut,
    responses=documented(404, 422, 503),
    dependencies=[allow(Access.READER)],
)
async def serve_features(
    body: SessionsRequest,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    scope: SessionScope,
) -> dict[str, Any]:
    """The flap features of each of your sessions as the online store holds them
    (``found`` is false for a session it has no features for). Sessions that are not
    yours are listed in ``not_found`` and not read; when none is, the answer is 404.
    The platform administrator reads any session."""
    from bgp_orchestrator.flaps.feature_store import online_features

    async with db.connection() as conn:
        owned = await ownership.owned_sessions(conn, scope, body.sessions)
    if not owned:
        raise ownership.not_yours(body.sessions)
    ids = [sid for sid in body.sessions if sid in owned]
    store = _online_reader(request, settings)
    try:
        rows = await asyncio.to_thread(online_features, store, ids)
    except Exception as exc:  # Redis down, registry unreadable
        raise ServiceUnavailable(
            "online-store-unavailable", f"the online feature store does not answer: {exc}"
        ) from exc
    return {
        "sessions": [
            {
                "session_id": sid,
                "features": {n: rows[sid][n] for n in FEATURES},
                "found": any(rows[sid][n] is not None for n in FEATURES),
            }
            for sid in ids
        ],
        "not_found": [sid for sid in body.sessions if sid not in owned],
    }


@router.post(
    "/materialize",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=documented(503),
    dependencies=[allow(Access.PLATFORM_ADMIN)],
)
async def materialize_now(
    launcher: Annotated[Launcher, Depends(get_launcher)], settings: SettingsDep
) -> dict[str, Any]:
    """Start the materialization job now (it also runs every
    ``BGPO_MATERIALIZE_INTERVAL_S``); follow it in the Ray dashboard."""
    from bgp_orchestrator.stack.jobs_client import MATERIALIZE_ENTRYPOINT

    job_id = await launcher.submit(MATERIALIZE_ENTRYPOINT, "materialize")
    return {"job_id": job_id, "status_url": f"{settings.dashboard_url}/api/jobs/{job_id}"}
