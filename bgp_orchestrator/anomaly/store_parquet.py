"""The metric store on Parquet files: the fallback when VictoriaMetrics is not installed.

Layout: ``<directory>/bucket=NN/<time>-<random>.parquet`` (a hive partition
per :func:`~bgp_orchestrator.anomaly.series.bucket_of` the session). Each write
adds one new file per bucket it touches, written as ``*.parquet.partial`` and
renamed, so a reader never sees half a file and several processes may write at
once. Reading some sessions opens only the buckets they map to.

Every write adds files (the live session stats write once per window), so
:meth:`ParquetMetricStore.compact` merges a bucket's files older than
``min_age_s`` into one, ``<newest input>-m<oldest input's time>.parquet``
(inputs concatenated in write order): it sorts before any later write, so "a
later write wins" still holds. The merged file is renamed into place before its
inputs are removed (a reader may for a moment see a point twice: reads keep
one; a reader whose listed file was just removed lists again), and a file
left inside a merged range by a crash is removed by the next compaction.
:meth:`~ParquetMetricStore.write` compacts the buckets it touched every
``compact_interval_s``. Further labels
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
    SeriesPoints,
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

    from bgp_orchestrator.anomaly.prepare import SeriesFrame


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


def _range(path: Path) -> tuple[int, int, bool]:
    """(oldest, newest) write time (ns) a file holds, and whether it is a merged one."""
    stem = path.name.removesuffix(".parquet")
    head = int(stem.split("-", 1)[0])
    if "-m" in stem:  # the random part is hex: never an "m"
        return int(stem.rsplit("-m", 1)[1]), head, True
    return head, head, False


class ParquetMetricStore:
    """A :class:`~bgp_orchestrator.anomaly.store.MetricStore` on Parquet files in a directory."""

    def __init__(
        self,
        directory: Path | str,
        *,
        compact_interval_s: float = 600.0,
        compact_min_age_s: float = 600.0,
    ) -> None:
        self.directory = Path(directory)
        self.compact_interval_s = compact_interval_s
        self.compact_min_age_s = compact_min_age_s
        self._compacted_at = time.monotonic()

    def describe(self) -> str:
        return f"Parquet files in {self.directory}"

    def bucket_dir(self, bucket: int) -> Path:
        return self.directory / f"bucket={bucket:02d}"

    # --- writing -------------------------------------------------------------

    async def write(self, points: Sequence[MetricPoint]) -> None:
        if not points:
            return
        validate_points(points)
        await self._written(self._write, list(points), f"{len(points)} points")

    async def _written(self, write: Any, items: list[Any], what: str) -> None:
        """Run a blocking write off the loop; a failure is a MetricStoreError."""
        import pyarrow as pa

        try:
            await asyncio.to_thread(write, items)
        except (OSError, pa.ArrowException) as exc:
            raise MetricStoreError(
                "metric-store-failed",
                f"cannot write {what} to {self.directory}: {exc}",
                "directory",
                str(self.directory),
            ) from exc

    def _write(self, points: list[MetricPoint]) -> None:
        by_bucket: dict[int, list[MetricPoint]] = defaultdict(list)
        for p in points:
            by_bucket[bucket_of(p.session)].append(p)
        tables: dict[int, dict[str, Any]] = {}
        for bucket, rows in sorted(by_bucket.items()):
            rows.sort(key=lambda p: (p.metric, p.session, p.timestamp))
            tables[bucket] = {
                "metric": [p.metric for p in rows],
                "session": [p.session for p in rows],
                "peer_asn": [p.peer_asn for p in rows],
                "timestamp": [point_ms(p) for p in rows],
                "value": [p.value for p in rows],
                "labels": [orjson.dumps(dict(p.labels)).decode() if p.labels else "" for p in rows],
            }
        self._write_tables(tables)

    async def write_series(self, series: Sequence[SeriesPoints]) -> None:
        """Whole series at once: the same files and rows as :meth:`write` of their
        points, built column by column (no :class:`MetricPoint` per point)."""
        for item in series:
            item.validate()
        await self._written(self._write_series, list(series), f"{len(series)} series")

    def _write_series(self, series: list[SeriesPoints]) -> None:
        import numpy as np

        by_bucket: dict[int, list[SeriesPoints]] = defaultdict(list)
        for item in series:
            if len(item.values):
                by_bucket[bucket_of(item.session)].append(item)
        tables: dict[int, dict[str, Any]] = {}
        for bucket, items in sorted(by_bucket.items()):
            # rank of (metric, session): with the timestamp, the order write() sorts
            # its points in; lexsort is stable, so equal keys keep the input order
            names = sorted({(i.metric, i.session) for i in items})
            rank = {name: number for number, name in enumerate(names)}
            counts = [len(i.values) for i in items]
            seconds = np.concatenate([np.asarray(i.timestamps, np.float64) for i in items])
            order = np.lexsort(
                (seconds, np.repeat([rank[(i.metric, i.session)] for i in items], counts))
            )
            labels = [orjson.dumps(dict(i.labels)).decode() if i.labels else "" for i in items]
            at = np.repeat(np.arange(len(items)), counts)[order]
            tables[bucket] = {
                "metric": np.array([i.metric for i in items], dtype=object)[at],
                "session": np.array([i.session for i in items], dtype=object)[at],
                "peer_asn": np.array([i.peer_asn for i in items], dtype=np.int64)[at],
                # round half to even, as point_ms's round()
                "timestamp": np.rint(seconds[order] * 1000).astype(np.int64),
                "value": np.concatenate([np.asarray(i.values, np.float64) for i in items])[order],
                "labels": np.array(labels, dtype=object)[at],
            }
        self._write_tables(tables)

    def _write_tables(self, tables: dict[int, dict[str, Any]]) -> None:
        """One new file per bucket of ``tables`` (its columns), then compaction when due."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema()
        for bucket, columns in sorted(tables.items()):
            table = pa.table(columns, schema=schema)
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
        if time.monotonic() - self._compacted_at >= self.compact_interval_s:
            self._compacted_at = time.monotonic()
            for bucket in sorted(tables):
                self._compact_bucket(bucket, self.compact_min_age_s)

    # --- compaction -----------------------------------------------------------

    def compact(self, min_age_s: float = 600.0) -> int:
        """Merge every bucket's files written ``min_age_s`` ago or earlier; returns how
        many files were merged. Safe beside readers and other writers."""
        return sum(self._compact_bucket(b, min_age_s) for b in range(BUCKETS))

    def _compact_bucket(self, bucket: int, min_age_s: float) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.bucket_dir(bucket)
        if not folder.is_dir():
            return 0
        files = sorted(folder.glob("*.parquet"))
        merged = [(f, *_range(f)) for f in files]
        # leftovers of a crash: plain files inside a merged range
        ranges = [(lo, hi) for f, lo, hi, is_merged in merged if is_merged]
        keep = []
        for f, lo, hi, is_merged in merged:
            if not is_merged and any(a <= lo and hi <= b for a, b in ranges):
                f.unlink(missing_ok=True)
            else:
                keep.append((f, lo, hi))
        cutoff = time.time_ns() - int(min_age_s * 1e9)
        old = [(f, lo, hi) for f, lo, hi in keep if hi <= cutoff]
        if len(old) < 2:
            return 0
        try:
            tables = [pq.read_table(f, schema=_schema()) for f, _, _ in old]
        except FileNotFoundError:  # another process compacts this bucket now
            return 0
        table = pa.concat_tables(tables)
        newest, oldest = old[-1][0], min(lo for _, lo, _ in old)
        final = folder / f"{newest.name.removesuffix('.parquet')}-m{oldest:020d}.parquet"
        partial = folder / f".{final.name}.partial"
        try:
            pq.write_table(table, partial)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        for f, _, _ in old:
            if f != final:
                f.unlink(missing_ok=True)
        return len(old)

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
        for _ in range(100):
            try:
                dataset = ds.dataset(files, schema=_schema(), format="parquet")
                return dataset.to_table(columns=columns, filter=condition)
            except FileNotFoundError:  # compacted away since listed: list again
                files = self._files(sessions, buckets)
                time.sleep(0.05)
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

    def _read_series(
        self,
        start_ms: int,
        end_ms: int,
        metrics: Sequence[str] | None,
        sessions: Sequence[str] | None,
        buckets: Sequence[int] | None,
    ) -> SeriesFrame:
        """:meth:`_read`'s points as a :class:`SeriesFrame`: the metric and session
        columns dictionary-encoded, so no string per point is made or compared."""
        import numpy as np
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc

        from bgp_orchestrator.anomaly.prepare import SeriesFrame

        columns = ["metric", "session", "peer_asn", "timestamp", "value"]
        table = self._scan(columns, start_ms, end_ms, metrics, sessions, buckets)
        if table is None or not table.num_rows:
            empty = np.empty(0, np.int64)
            return SeriesFrame([], empty, empty, pd.DatetimeIndex([], tz="UTC"), np.empty(0))

        def ranked(name: str) -> tuple[np.ndarray, list[str]]:
            # each point's rank among the column's distinct values, sorted as strings
            encoded = pc.dictionary_encode(table[name].combine_chunks())
            names = encoded.dictionary.to_pylist()
            order = sorted(range(len(names)), key=names.__getitem__)
            rank = np.empty(len(names), np.int64)
            rank[order] = np.arange(len(names))
            return rank[encoded.indices.to_numpy(zero_copy_only=False)], [names[i] for i in order]

        metric_rank, metric_names = ranked("metric")
        session_rank, session_names = ranked("session")
        key = metric_rank * len(session_names) + session_rank  # sorts as (metric, session)
        ts = table["timestamp"].cast(pa.int64()).to_numpy()
        order = np.lexsort((ts, key))  # stable: the points of a step keep the files' order
        key, ts = key[order], ts[order]
        # a step written more than once: the last write wins (the last of its run)
        last = np.append((key[1:] != key[:-1]) | (ts[1:] != ts[:-1]), True)
        order, key, ts = order[last], key[last], ts[last]
        starts = np.flatnonzero(np.append(True, key[1:] != key[:-1]))
        series_keys = key[starts]
        ids = [
            f"{metric_names[k // len(session_names)]}/{session_names[k % len(session_names)]}"
            for k in series_keys.tolist()
        ]
        asns = table["peer_asn"].to_numpy()[order[starts]].astype(np.int64)
        codes = np.repeat(np.arange(len(ids)), np.diff(np.append(starts, len(key))))
        return SeriesFrame(
            ids,
            asns,
            codes,
            pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True)).as_unit("ns"),
            table["value"].to_numpy()[order].astype(np.float64),
        )

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

    async def read_series(
        self,
        *,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        buckets: Sequence[int] | None = None,
    ) -> SeriesFrame:
        """:meth:`read`'s points grouped by series (the same contract), without a
        long frame of strings per point."""
        import numpy as np
        import pandas as pd

        from bgp_orchestrator.anomaly.prepare import SeriesFrame

        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        if (
            end_ms <= start_ms
            or nothing_asked(metrics)
            or nothing_asked(sessions)
            or nothing_asked(buckets)
        ):
            empty = np.empty(0, np.int64)
            return SeriesFrame([], empty, empty, pd.DatetimeIndex([], tz="UTC"), np.empty(0))
        frame: SeriesFrame = await self._guard(
            "read points", self._read_series, start_ms, end_ms, metrics, sessions, buckets
        )
        return frame

    async def series(
        self, *, start: datetime, end: datetime, metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        if end_ms <= start_ms or nothing_asked(metrics):
            return finish_series([])
        return await self._guard("list series", self._series, start_ms, end_ms, metrics)

    async def _guard(self, what: str, func: Any, *args: Any) -> Any:
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
