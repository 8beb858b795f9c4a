"""The Feast feature store of flap features: Parquet offline, Redis online.

The definitions (entity ``peer_session``, feature view ``session_flap_features``)
live here so that the API, the jobs and ``feature_repo/`` (for the ``feast``
CLI) build the same objects from one :class:`~bgp_orchestrator.settings.Settings`.
The offline store is a directory of Parquet files under the data directory
(``features/flap/``), one file per writer run or live window (the live ones
compacted per hour and day, :mod:`~bgp_orchestrator.flaps.compaction`); Feast
reads it as one dataset.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from bgp_orchestrator.errors import ConfigurationError, InvalidInput
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, LABEL, TIMESTAMP

if TYPE_CHECKING:
    from feast import FeatureStore

    from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)

PROJECT = "bgpo"
VIEW = "session_flap_features"
# Features older than this are not served (a session quiet for a day is stale).
TTL = timedelta(days=1)


# Importing feast puts prometheus_client into multiprocess mode through these
# variables, pointing at a temporary directory it deletes at exit; children
# (the Ray head that `bgpo up` starts, jobs) would inherit a dead directory.
_FEAST_ENV = ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR")


def _import_feast() -> Any:
    for name in _FEAST_ENV:
        folder = os.environ.get(name)
        if folder is not None and not os.path.isdir(folder):
            os.environ.pop(name)  # inherited from a process that has exited
    before = {name: os.environ.get(name) for name in _FEAST_ENV}
    import feast

    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
    return feast


def offline_dir(settings: Settings) -> Path:
    return settings.data_dir / "features" / "flap"


def feast_redis(redis_url: str) -> str:
    """``redis://:pw@host:port/db`` -> Feast's ``host:port,db=N,password=pw``."""
    parts = urlsplit(redis_url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ConfigurationError(
            "invalid-redis-url", "the Redis URL must start with redis:// or rediss://"
        )
    text = f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
    db = parts.path.strip("/")
    if db:
        text += f",db={int(db)}"
    if parts.password:
        text += f",password={unquote(parts.password)}"
    if parts.scheme == "rediss":
        text += ",ssl=true"
    return text


def definitions(settings: Settings) -> list[Any]:
    """The Feast objects: the session entity and the flap feature view."""
    _import_feast()
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, String

    session = Entity(
        name="peer_session",
        join_keys=[ENTITY],
        value_type=ValueType.STRING,
        description="One BGP session: 'collector|peer address'.",
    )
    source = FileSource(
        name="flap_windows",
        path=str(offline_dir(settings)),
        timestamp_field=TIMESTAMP,
        description="Per-session window features written by the feature jobs.",
    )
    view = FeatureView(
        name=VIEW,
        entities=[session],
        ttl=TTL,
        schema=[Field(name=ENTITY, dtype=String)]
        + [Field(name=name, dtype=Float32) for name in FEATURES],
        source=source,
        online=True,
        description="Flap-prediction inputs per session and 5-minute window.",
    )
    return [session, view]


def open_store(settings: Settings, redis_url: str, project: str = PROJECT) -> FeatureStore:
    """A FeatureStore on the Parquet offline store and the given Redis (keys are
    namespaced by ``project``)."""
    _import_feast()
    from feast import FeatureStore, RepoConfig

    registry = settings.data_dir / "features" / "registry.db"
    registry.parent.mkdir(parents=True, exist_ok=True)
    offline_dir(settings).mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(registry),
        offline_store={"type": "file"},
        online_store={"type": "redis", "connection_string": feast_redis(redis_url)},
        entity_key_serialization_version=3,
    )
    return FeatureStore(config=config)


def apply(store: FeatureStore, settings: Settings) -> None:
    """Register the definitions (what ``feast apply`` does); idempotent."""
    store.apply(definitions(settings))


def write_offline(settings: Settings, features: pd.DataFrame, name: str) -> Path:
    """Add a Parquet file of feature rows (and labels, where known) to the offline
    store, atomically; a file of the same name is replaced."""
    missing = [c for c in (ENTITY, TIMESTAMP, *FEATURES) if c not in features.columns]
    if missing:
        raise InvalidInput(
            "missing-features", f"feature rows lack the columns {', '.join(missing)}"
        )
    folder = offline_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.parquet"
    partial = folder / f".{name}.parquet.partial"
    columns = [ENTITY, TIMESTAMP, *FEATURES] + ([LABEL] if LABEL in features.columns else [])
    features[columns].to_parquet(partial, index=False)
    partial.replace(target)
    return target


def read_offline(settings: Settings, columns: list[str], start: datetime, end: datetime) -> Any:
    """The offline store's rows with ``start <= event_timestamp <= end`` (a pyarrow
    table), or None when it holds no file. A file removed between listing and reading
    (compaction replaced it, :mod:`~bgp_orchestrator.flaps.compaction`) makes it list
    again; a row may appear twice while a compaction finishes (identical copies)."""
    import pyarrow.dataset as pads

    folder = offline_dir(settings)
    deadline = time.monotonic() + 30.0
    while True:
        if not any(folder.glob("*.parquet")):
            return None
        try:
            dataset = pads.dataset(str(folder), format="parquet")
            return dataset.to_table(
                columns=columns,
                filter=(pads.field(TIMESTAMP) >= start) & (pads.field(TIMESTAMP) <= end),
            )
        except FileNotFoundError:
            if time.monotonic() > deadline:  # files vanishing for that long: not compaction
                raise
            time.sleep(0.05)


def newest_rows(settings: Settings, end: datetime) -> pd.DataFrame:
    """The newest feature row of every session as materialization leaves the online
    store at ``end``: per session, the latest row no older than the TTL."""
    table = read_offline(settings, [ENTITY, TIMESTAMP, *FEATURES], end - TTL, end)
    if table is None:
        return pd.DataFrame(columns=[ENTITY, TIMESTAMP, *FEATURES])
    frame = table.to_pandas()
    return frame.sort_values(TIMESTAMP, kind="stable").drop_duplicates(ENTITY, keep="last")


def materialize(store: FeatureStore, end: datetime | None = None) -> datetime:
    """Move the newest features of every session into the online store."""
    end = end or datetime.now(UTC)
    store.materialize_incremental(end_date=end)
    return end


def online_features(
    store: FeatureStore, session_ids: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """Features of each session from the online store (None where missing)."""
    refs = [f"{VIEW}:{name}" for name in FEATURES]
    answer = store.get_online_features(
        features=refs, entity_rows=[{ENTITY: sid} for sid in session_ids]
    ).to_dict()
    out: dict[str, dict[str, float | None]] = {}
    for i, sid in enumerate(session_ids):
        out[sid] = {name: answer[name][i] for name in FEATURES}
    return out
