"""The flap-model registry (PostgreSQL) and where model artifacts live.

A model is registered only after its ONNX export passed the agreement check;
activating one makes it the model every predictor replica serves (they poll
:func:`active`). Artifacts are files under ``BGPO_MODEL_STORE`` — a directory, or
an object-store URI that ``pyarrow.fs`` understands (``s3://``, ``gs://``) —
copied to a local cache before loading.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bgp_orchestrator.errors import InvalidInput, NotFound

MODEL_FILE = "model.onnx"
BOOSTER_FILE = "model.ubj"

_COLUMNS = (
    "version, created_at, features, metrics, params, data_from, data_to, training_rows, "
    "artifact_uri, onnx_max_diff, active, activated_at"
)


@dataclass(frozen=True)
class ModelRecord:
    version: int
    created_at: datetime
    features: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    data_from: datetime
    data_to: datetime
    training_rows: int
    artifact_uri: str
    onnx_max_diff: float
    active: bool
    activated_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ModelRecord:
        values = dict(row)
        for key in ("features", "metrics", "params"):
            if isinstance(values[key], str):
                values[key] = json.loads(values[key])
        return cls(**values)


async def register(
    conn: asyncpg.Connection,
    *,
    features: Sequence[str],
    metrics: dict[str, Any],
    params: dict[str, Any],
    data_from: datetime,
    data_to: datetime,
    training_rows: int,
    artifact_uri: str,
    onnx_max_diff: float,
) -> ModelRecord:
    row = await conn.fetchrow(
        f"""
        INSERT INTO flap_models (features, metrics, params, data_from, data_to,
                                 training_rows, artifact_uri, onnx_max_diff)
        VALUES ($1::jsonb, $2::jsonb, $3::jsonb, $4, $5, $6, $7, $8)
        RETURNING {_COLUMNS}
        """,
        json.dumps(list(features)),
        json.dumps(metrics),
        json.dumps(params, default=str),
        data_from,
        data_to,
        training_rows,
        artifact_uri,
        onnx_max_diff,
    )
    assert row is not None
    return ModelRecord.from_row(row)


async def models(conn: asyncpg.Connection, limit: int = 100, offset: int = 0) -> list[ModelRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM flap_models ORDER BY version DESC LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return [ModelRecord.from_row(r) for r in rows]


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM flap_models"))


async def get(conn: asyncpg.Connection, version: int) -> ModelRecord:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM flap_models WHERE version = $1", version)
    if row is None:
        raise NotFound("model-not-found", f"no flap model version {version}", "version", version)
    return ModelRecord.from_row(row)


async def active(conn: asyncpg.Connection) -> ModelRecord | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM flap_models WHERE active")
    return ModelRecord.from_row(row) if row else None


async def activate(conn: asyncpg.Connection, version: int) -> ModelRecord:
    """Make ``version`` the serving model (one transaction: never zero or two active)."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE flap_models IN SHARE ROW EXCLUSIVE MODE")
        record = await get(conn, version)
        if record.active:
            return record
        await conn.execute("UPDATE flap_models SET active = false WHERE active")
        row = await conn.fetchrow(
            f"UPDATE flap_models SET active = true, activated_at = now() "
            f"WHERE version = $1 RETURNING {_COLUMNS}",
            version,
        )
        assert row is not None
        return ModelRecord.from_row(row)


async def write_predictions(
    conn: asyncpg.Connection,
    version: int,
    rows: Sequence[tuple[str, float, datetime | None]],
) -> int:
    """Upsert the latest probability of each session (session, probability, features' time)."""
    if not rows:
        return 0
    await conn.execute(
        """
        INSERT INTO flap_predictions (session_id, model_version, probability, features_at)
        SELECT s, $1, p, t FROM unnest($2::text[], $3::real[], $4::timestamptz[]) AS u(s, p, t)
        ON CONFLICT (session_id) DO UPDATE
           SET model_version = excluded.model_version, probability = excluded.probability,
               features_at = excluded.features_at, scored_at = now()
        """,
        version,
        [r[0] for r in rows],
        [float(r[1]) for r in rows],
        [r[2] for r in rows],
    )
    return len(rows)


# --- artifacts ---------------------------------------------------------------------------


def new_artifact_uri(store: str) -> str:
    """A fresh location for one training run's artifacts under the model store."""
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    return f"{store.rstrip('/')}/flap/{name}"


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def publish(local_dir: Path, uri: str) -> str:
    """Copy the files of ``local_dir`` to ``uri`` (a directory or object-store prefix)."""
    if _is_local(uri):
        target = _local_path(uri)
        if target.resolve() != local_dir.resolve():
            shutil.copytree(local_dir, target, dirs_exist_ok=True)
        return uri
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(uri)
    filesystem.create_dir(base, recursive=True)
    for item in local_dir.iterdir():
        fs.copy_files(str(item), f"{base}/{item.name}", destination_filesystem=filesystem)
    return uri


def fetch(uri: str, cache: Path) -> Path:
    """A local directory holding the artifacts at ``uri``."""
    if _is_local(uri):
        path: Path = _local_path(uri)
        if not (path / MODEL_FILE).is_file():
            raise InvalidInput(
                "model-artifact-missing", f"no {MODEL_FILE} under {uri}", "artifact_uri", uri
            )
        return path
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(uri)
    target: Path = cache / str(base).strip("/").replace("/", "_")
    target.mkdir(parents=True, exist_ok=True)
    fs.copy_files(f"{base}/{MODEL_FILE}", str(target / MODEL_FILE), source_filesystem=filesystem)
    return target
