"""What `bgpo up` does for flap prediction before the predictor starts.

The feature definitions are applied (``feast apply``). On a stack that has no
model yet, a *starter* model is trained in-process on simulated sessions whose
windows end now (a few seconds), registered and activated, and those features
are materialized, so the predictor is healthy and answers from the first
minute. Replace it with a model trained on real data: ``jobs.train_flap_model``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bgp_orchestrator.flaps import materialization, registry
from bgp_orchestrator.flaps.dataset import simulated
from bgp_orchestrator.flaps.feature_store import write_offline
from bgp_orchestrator.flaps.features import LABEL, TIMESTAMP
from bgp_orchestrator.flaps.release import release
from bgp_orchestrator.flaps.training import (
    DEFAULT_PARAMS,
    LabelSpec,
    time_split,
    xy,
)
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.sessions import SessionSimulation

STARTER_SESSIONS = 2_000
STARTER_WINDOWS = 48
STARTER_ROUNDS = 60


async def _has_model(settings: Settings) -> bool:
    from bgp_orchestrator.storage.database import open_database

    async with open_database(settings) as db, db.connection() as conn:
        return await registry.count(conn) > 0


def starter_simulation(settings: Settings, now: datetime | None = None) -> SessionSimulation:
    now = now or datetime.now(UTC)
    window = settings.flap_window_s
    end = datetime.fromtimestamp(int(now.timestamp()) // window * window, UTC)
    return SessionSimulation(
        sessions=STARTER_SESSIONS,
        windows=STARTER_WINDOWS,
        window_s=window,
        start=end - timedelta(seconds=window * STARTER_WINDOWS),
        seed=11,
    )


def train_starter(settings: Settings) -> registry.ModelRecord:
    import xgboost

    spec = LabelSpec(settings.flap_window_s, settings.flap_horizon_s, settings.flap_withdraw_share)
    frame = simulated(starter_simulation(settings), spec)
    write_offline(settings, frame, "starter")
    labelled = frame[frame[LABEL].notna()].reset_index(drop=True)
    split = time_split(labelled[TIMESTAMP])
    train = split.part(labelled, "train")
    test = split.part(labelled, "test")
    matrix, labels = xy(train)
    booster = xgboost.train(
        {**DEFAULT_PARAMS, "nthread": 1},
        xgboost.DMatrix(matrix, label=labels),
        num_boost_round=STARTER_ROUNDS,
    )
    done = asyncio.run(
        release(
            booster,
            test,
            settings=settings,
            model_store=settings.model_store_uri,
            params={**DEFAULT_PARAMS, "rounds": STARTER_ROUNDS, "starter": True},
            data_from=split.first.to_pydatetime(),
            data_to=split.last.to_pydatetime(),
            training_rows=len(train),
            activate=True,
            extra_metrics={"note": "starter model trained on simulated sessions by `bgpo up`"},
        )
    )
    return done.record


def prepare(
    settings: Settings, redis_url: str, step: Callable[[str], None]
) -> registry.ModelRecord | None:
    """Apply the feature definitions; train the starter model if there is none."""
    record = None
    if not asyncio.run(_has_model(settings)):
        step("training a starter flap model on simulated sessions")
        record = train_starter(settings)
    step("applying the feature definitions and materializing features")
    materialization.run(settings, redis_url)
    return record
