"""The flap predictor: the active ONNX model and the sessions' online features.

Ray-free; ``deployments/predictor.py`` puts it behind ``@serve.batch``. Two
things are kept current in the background:

* the **model**: the registry's active version (or the version pinned by the
  deployment's ``user_config``). A new version is loaded and checked next to
  the old one and swapped in one assignment, so no request sees a half-loaded
  model; one that fails its checks is not swapped in and the old one keeps
  serving (``last_error`` says why).
* the **features**: a copy of the online store's rows for every materialized
  session, refreshed when a materialization finishes (it bumps
  :data:`MATERIALIZED_KEY`). Reading 80,000 sessions through Feast takes
  seconds, so requests are answered from the copy; a session missing from it
  is read from the online store directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from bgp_orchestrator.errors import InvalidInput, NotFound, ServiceUnavailable
from bgp_orchestrator.flaps import registry
from bgp_orchestrator.flaps.features import FEATURES
from bgp_orchestrator.flaps.onnx_model import ModelCheckError, OnnxFlapModel, smoke_test

if TYPE_CHECKING:
    import asyncpg
    from feast import FeatureStore

    from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)

# Redis keys shared with the materialization job.
MATERIALIZED_KEY = "bgpo:flap:materialized_at"
SESSIONS_KEY = "bgpo:flap:sessions"
READ_CHUNK = 5_000


@dataclass(frozen=True)
class LoadedModel:
    version: int
    model: OnnxFlapModel
    features: tuple[str, ...]


@dataclass
class PredictorStatus:
    version: int | None = None
    loaded_at: float | None = None
    last_error: str | None = None
    cached_sessions: int = 0
    features_refreshed_at: float | None = None
    swaps: int = 0
    errors: list[str] = field(default_factory=list)


class FeatureCache:
    """Features per session, from the online store (see the module docstring)."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self._rows: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def read(self, session_ids: Sequence[str]) -> dict[str, dict[str, float | None]]:
        """Blocking read through Feast (run it in a thread)."""
        from bgp_orchestrator.flaps.feature_store import online_features

        out: dict[str, dict[str, float | None]] = {}
        for start in range(0, len(session_ids), READ_CHUNK):
            out.update(online_features(self._store, session_ids[start : start + READ_CHUNK]))
        return out

    def reload(self, session_ids: Sequence[str]) -> int:
        """Blocking: replace the copy with the online store's rows for these sessions."""
        rows: dict[str, np.ndarray] = {}
        for sid, values in self.read(session_ids).items():
            vector = [values[name] for name in FEATURES]
            if all(v is not None for v in vector):
                rows[sid] = np.asarray(vector, dtype=np.float32)
        self._rows = rows
        return len(rows)

    def reload_rows(self, frame: Any) -> int:
        """Replace the copy with these feature rows (one per session)."""
        matrix = frame[list(FEATURES)].to_numpy(np.float32)
        self._rows = dict(zip(frame["session_id"].tolist(), matrix, strict=True))
        return len(self._rows)

    def lookup(self, session_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        rows = self._rows
        found = {sid: rows[sid] for sid in session_ids if sid in rows}
        return found, [sid for sid in session_ids if sid not in found]


class FlapPredictor:
    def __init__(
        self,
        store: FeatureStore,
        cache_dir: Path,
        threads: int = 1,
        redis: Any = None,
        settings: Settings | None = None,
    ) -> None:
        self.features = FeatureCache(store)
        self._settings = settings
        self._cache_dir = cache_dir
        self._threads = threads
        self._redis = redis
        self._model: LoadedModel | None = None
        self._materialized: bytes | None = None
        self.status = PredictorStatus()

    # --- model -------------------------------------------------------------------------

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    async def load(self, conn: asyncpg.Connection, version: int | None) -> bool:
        """Serve ``version`` (None: the registry's active one). True if it changed.

        Raises nothing: a model that fails keeps the current one serving.
        """
        try:
            record = (
                await registry.get(conn, version)
                if version is not None
                else await registry.active(conn)
            )
        except NotFound as exc:
            self._fail(str(exc))
            return False
        if record is None or (self._model and self._model.version == record.version):
            return False
        try:
            loaded = await asyncio.to_thread(self._load_record, record)
        except (ModelCheckError, InvalidInput, OSError) as exc:
            self._fail(f"model v{record.version} not loaded, keeping the current one: {exc}")
            return False
        self._model = loaded  # one assignment: requests see the old or the new model
        self.status.version = loaded.version
        self.status.loaded_at = time.time()
        self.status.last_error = None
        self.status.swaps += 1
        log.info("serving flap model v%d", loaded.version)
        return True

    def _load_record(self, record: registry.ModelRecord) -> LoadedModel:
        if tuple(record.features) != FEATURES:
            raise ModelCheckError(
                f"model v{record.version} was trained on features {record.features}, "
                f"this predictor computes {list(FEATURES)}"
            )
        folder = registry.fetch(record.artifact_uri, self._cache_dir)
        model = OnnxFlapModel(folder / registry.MODEL_FILE, self._threads)
        smoke_test(model)
        return LoadedModel(record.version, model, tuple(record.features))

    def _fail(self, message: str) -> None:
        log.warning("%s", message)
        self.status.last_error = message
        self.status.errors = [*self.status.errors[-9:], message]

    # --- features ----------------------------------------------------------------------

    async def refresh_features(self, force: bool = False) -> bool:
        """Reload the feature copy if a materialization finished since the last one."""
        if self._redis is None:
            return False
        marker = await self._redis.get(MATERIALIZED_KEY)
        if marker is None or (marker == self._materialized and not force):
            return False
        if self._settings is not None:
            # The rows the materialization that set the marker moved into Redis, read
            # from their Parquet source: 80,000 sessions in well under a second,
            # where reading them back through Feast takes about ten.
            from bgp_orchestrator.flaps.feature_store import newest_rows

            end = datetime.fromisoformat(marker.decode())
            rows = await asyncio.to_thread(newest_rows, self._settings, end)
            count = self.features.reload_rows(rows)
        else:
            ids = sorted(m.decode() for m in await self._redis.smembers(SESSIONS_KEY))
            count = await asyncio.to_thread(self.features.reload, ids)
        self._materialized = marker
        self.status.cached_sessions = count
        self.status.features_refreshed_at = time.time()
        return True

    async def _features_for(self, session_ids: Sequence[str]) -> tuple[np.ndarray, dict[str, str]]:
        """The feature matrix of the sessions, and the reason for any that have none."""
        found, missing = self.features.lookup(session_ids)
        problems: dict[str, str] = {}
        if missing:
            try:
                fresh = await asyncio.to_thread(self.features.read, missing)
            except Exception as exc:  # Redis down, Feast registry unreadable
                raise ServiceUnavailable(
                    "online-store-unavailable", f"the online feature store does not answer: {exc}"
                ) from exc
            for sid in missing:
                values = fresh.get(sid, {})
                absent = [name for name in FEATURES if values.get(name) is None]
                if len(absent) == len(FEATURES):
                    problems[sid] = "unknown session: no features in the online store"
                elif absent:
                    problems[sid] = f"missing features: {', '.join(absent)}"
                else:
                    found[sid] = np.asarray([values[n] for n in FEATURES], dtype=np.float32)
        matrix = (
            np.stack([found[sid] for sid in session_ids if sid in found])
            if found
            else np.zeros((0, len(FEATURES)), dtype=np.float32)
        )
        return matrix, problems

    async def predict(self, session_ids: Sequence[str]) -> list[dict[str, Any]]:
        """One answer per session: probability, model version and the features used,
        or an ``error`` saying why there is none."""
        loaded = self._model
        if loaded is None:
            raise ServiceUnavailable(
                "no-model",
                "no flap model is loaded: train one (jobs.train_flap_model) and activate it",
            )
        matrix, problems = await self._features_for(session_ids)
        probabilities = (loaded.model.predict(matrix) if len(matrix) else np.zeros(0)).tolist()
        vectors = matrix.tolist()  # Python floats in one step, not one per value
        out: list[dict[str, Any]] = []
        row = 0
        for sid in session_ids:
            if sid in problems:
                out.append({"session_id": sid, "error": problems[sid]})
                continue
            out.append(
                {
                    "session_id": sid,
                    "probability": probabilities[row],
                    "model_version": loaded.version,
                    "features": dict(zip(FEATURES, vectors[row], strict=True)),
                }
            )
            row += 1
        return out

    async def predict_json(self, session_ids: Sequence[str]) -> bytes:
        """:meth:`predict`'s answers as a JSON array: bytes cross from a Serve
        replica to the API for next to nothing, where 10,000 answers as Python
        objects cost more to pickle and unpickle than to predict."""
        return orjson.dumps(await self.predict(session_ids))
