"""The metric store on Parquet files: the fallback when VictoriaMetrics is not installed.

Layout: ``<directory>/bucket=NN/<time>-<random>.parquet`` (a hive partition
per :func:`~bgp_orchestrator.anomaly.series.bucket_of` the session). Each write
adds one new file per bucket it touches, written as ``*.parquet.partial`` and
renamed, so a reader never sees half a file and several processes may write at
once. Reading some sessions opens only the buckets they map to. Further labels
are kept as a JSON object in the string column ``labels`` (not returned by
:meth:`ParquetMetricStore.read`). Points are kept forever: the retention of
VictoriaMetrics does not apply here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bgp_orchestrator.anomaly.series import BUCKETS, MetricPoint, bucket_of
from bgp_orchestrator.anomaly.store import (
    MetricStoreError,
    empty_frame,
    epoch_ms,
    finish_points,
    finish_series,
    nothing_asked,
    point_ms,
    validate_points,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("metric", pa.string()),
            ("session", pa.string()),
            ("peer_asn", pa.int64()),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
            ("value", pa.float64()),
            ("labels", pa.string()),
        ]
    )


class ParquetMetricStore:
    """A :class:`~bgp_orchestrator.anomaly.store.MetricStore` on Parquet files in a directory."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def describe(self) -> str:
        return f"Parquet files in {self.directory}"

    def bucket_dir(self, bucket: int) -> Path:
        return self.directory / f"bucket={bucket:02d}"

    # --- writing -------------------------------------------------------------

    async def write(self, points: Sequence[MetricPoint]) -> None:
        if not points:
            return
        validate_points(points)
        import pyarrow as pa

        try:
            await asyncio.to_thread(self._write, list(points))
        except (OSError, pa.ArrowException) as exc:
            raise MetricStoreError(
                "metric-store-failed",
                f"cannot write {len(points)} points to {self.directory}: {exc}",
                "directory",
                str(self.directory),
            ) from exc

    def _write(self, points: list[MetricPoint]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        by_bucket: dict[int, list[MetricPoint]] = defaultdict(list)
        for p in points:
            by_bucket[bucket_of(p.session)].append(p)
        schema = _schema()
        for bucket, rows in sorted(by_bucket.items()):
            rows.sort(key=lambda p: (p.metric, p.session, p.timestamp))
            table = pa.table(
                {
                    "metric": [p.metric for p in rows],
                    "session": [p.session for p in rows],
                    "peer_asn": [p.peer_asn for p in rows],
                    "timestamp": [point_ms(p) for p in rows],
                    "value": [p.value for p in rows],
                    "labels": [
                        orjson.dumps(dict(p.labels)).decode() if p.labels else "" for p in rows
                    ],
                },
                schema=schema,
            )
            folder = self.bucket_dir(bucket)
            folder.mkdir(parents=True, exist_ok=True)
            # Names sort by write time, so a later write of the same point wins on read.
            final = folder / f"{time.time_ns():020d}-{secrets.token_hex(4)}.parquet"
            partial = final.with_name(final.name + ".partial")
            try:
                pq.write_table(table, partial)
                os.replace(partial, final)
            finally:
                partial.unlink(missing_ok=True)

    async def flush(self) -> None:
        """Nothing to do: a write is readable once it returns."""
        return None

    # --- reading -------------------------------------------------------------

    def _files(
        self, sessions: Sequence[str] | None, buckets: Sequence[int] | None = None
    ) -> list[str]:
        chosen = set(range(BUCKETS)) if buckets is None else set(buckets)
        if sessions is not None:
            chosen &= {bucket_of(s) for s in sessions}
        files: list[str] = []
        for bucket in sorted(chosen):
            folder = self.bucket_dir(bucket)
            if folder.is_dir():
                files.extend(str(f) for f in sorted(folder.glob("*.parquet")))
        return files

    def _scan(
        self,
        columns: list[str],
        start_ms: int,
        end_ms: int,
        metrics: Sequence[str] | None,
        sessions: Sequence[str] | None,
        buckets: Sequence[int] | None = None,
    ) -> pa.Table | None:
        import pyarrow as pa
        import pyarrow.dataset as ds

        files = self._files(sessions, buckets)
        if not files:
            return None
        ts = pa.timestamp("ms", tz="UTC")
        condition = (ds.field("timestamp") >= pa.scalar(start_ms, ts)) & (
            ds.field("timestamp") < pa.scalar(end_ms, ts)
        )
        if metrics is not None:
            condition &= ds.field("metric").isin(list(metrics))
        if sessions is not None:
            condition &= ds.field("session").isin(list(sessions))
        dataset = ds.dataset(files, schema=_schema(), format="parquet")
        return dataset.to_table(columns=columns, filter=condition)

    def _read(
        self,
        start_ms: int,
        end_ms: int,
        metrics: Sequence[str] | None,
        sessions: Sequence[str] | None,
        buckets: Sequence[int] | None,
    ) -> pd.DataFrame:
        import pyarrow as pa

        columns = ["metric", "session", "peer_asn", "timestamp", "value"]
        table = self._scan(columns, start_ms, end_ms, metrics, sessions, buckets)
        if table is None:
            return empty_frame()
        table = table.set_column(3, "timestamp", table["timestamp"].cast(pa.int64()))
        return finish_points(table.to_pandas(), start_ms, end_ms)

    def _series(self, start_ms: int, end_ms: int, metrics: Sequence[str] | None) -> pd.DataFrame:
        table = self._scan(["metric", "session", "peer_asn"], start_ms, end_ms, metrics, None)
        if table is None:
            return finish_series([])
        distinct = table.group_by(["metric", "session", "peer_asn"]).aggregate([])
        return finish_series(distinct.to_pandas())

    async def read(
        self,
        *,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        buckets: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        if (
            end_ms <= start_ms
            or nothing_asked(metrics)
            or nothing_asked(sessions)
            or nothing_asked(buckets)
        ):
            return empty_frame()
        return await self._guard(
            "read points", self._read, start_ms, end_ms, metrics, sessions, buckets
        )

    async def series(
        self, *, start: datetime, end: datetime, metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        if end_ms <= start_ms or nothing_asked(metrics):
            return finish_series([])
        return await self._guard("list series", self._series, start_ms, end_ms, metrics)

    async def _guard(self, what: str, func: Any, *args: Any) -> pd.DataFrame:
        import pyarrow as pa

        try:
            return await asyncio.to_thread(func, *args)
        except (OSError, pa.ArrowException) as exc:
            raise MetricStoreError(
                "metric-store-failed",
                f"cannot {what} from {self.directory}: {type(exc).__name__}: {exc}",
                "directory",
                str(self.directory),
            ) from exc

    async def close(self) -> None:
        return None
