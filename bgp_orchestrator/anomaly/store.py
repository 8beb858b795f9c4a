"""Long-term storage of the per-session metric series.

:class:`MetricStore` is the interface the live statistics, the fitting job and
the API code against. Two implementations:

* :class:`~bgp_orchestrator.anomaly.store_vm.VictoriaMetricsStore`: a
  VictoriaMetrics server (configured with ``BGPO_VICTORIA_METRICS_URL``, or the
  embedded one `bgpo up` starts when the ``victoria-metrics`` binary is
  installed);
* :class:`~bgp_orchestrator.anomaly.store_parquet.ParquetMetricStore`: Parquet
  files under ``<data_dir>/metrics``, the fallback without VictoriaMetrics.

:func:`open_metric_store` chooses one from the settings. Every point is
stored with millisecond precision; reads return the frame described by
:data:`COLUMNS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bgp_orchestrator.anomaly.series import MetricPoint
from bgp_orchestrator.errors import ServiceUnavailable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from bgp_orchestrator.anomaly.prepare import SeriesFrame
    from bgp_orchestrator.settings import Settings

#: Columns (and dtypes) of :meth:`MetricStore.read`'s frame, in order.
COLUMNS: dict[str, str] = {
    "metric": "object",
    "session": "object",
    "peer_asn": "int64",
    "timestamp": "datetime64[ns, UTC]",
    "value": "float64",
}
#: Columns of :meth:`MetricStore.series`'s frame.
SERIES_COLUMNS = ("metric", "session", "peer_asn")

#: Labels every point carries; a point's further labels may not use these names.
RESERVED_LABELS = frozenset({"__name__", "session", "peer_asn", "bucket"})

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MetricStoreError(ServiceUnavailable):
    """Writing to or reading from the metric store failed (``code`` says how); the
    API answers 503: the metric store is a dependency, like PostgreSQL."""


class MetricStore(Protocol):
    """Where the per-session metric series live."""

    async def write(self, points: Sequence[MetricPoint]) -> None:
        """Store the points; raises :class:`MetricStoreError` on failure."""
        ...

    async def read(
        self,
        *,
        start: datetime,
        end: datetime,
        metrics: Sequence[str] | None = None,
        sessions: Sequence[str] | None = None,
        buckets: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """Points with ``start <= timestamp < end`` (:data:`COLUMNS`), sorted by
        metric, session, timestamp. ``None`` means every metric / session;
        ``buckets`` keeps only sessions of these :func:`~.series.bucket_of` buckets
        (how the fitting job reads in chunks: an exact label match, cheap for any
        number of sessions)."""
        ...

    async def series(
        self, *, start: datetime, end: datetime, metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Distinct (metric, session, peer_asn) with points in the range, sorted."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """Where the points go, for logs and `bgpo status`."""
        ...


def parquet_directory(settings: Settings) -> Path:
    """The Parquet fallback's directory: ``<data_dir>/metrics``."""
    return settings.data_dir / "metrics"


def open_metric_store(settings: Settings) -> MetricStore:
    """VictoriaMetrics when a URL is configured or the embedded one is in use, else Parquet.

    The choice is :func:`bgp_orchestrator.local.victoria.metrics_url`'s, the one
    `bgpo up` exports to Ray jobs and Serve replicas.
    """
    from bgp_orchestrator.local.victoria import metrics_url

    url = metrics_url(settings)
    if url:
        from bgp_orchestrator.anomaly.store_vm import VictoriaMetricsStore

        return VictoriaMetricsStore(url)
    from bgp_orchestrator.anomaly.store_parquet import ParquetMetricStore

    return ParquetMetricStore(parquet_directory(settings))


# --- whole series --------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPoints:
    """The points of one series at once (what the fitting job writes back: its
    bands), without a :class:`MetricPoint` per point."""

    metric: str
    session: str
    peer_asn: int
    timestamps: np.ndarray  # epoch seconds (UTC)
    values: np.ndarray
    labels: tuple[tuple[str, str], ...] = ()

    def points(self) -> list[MetricPoint]:
        return [
            MetricPoint(self.metric, self.session, self.peer_asn, t, v, self.labels)
            for t, v in zip(self.timestamps.tolist(), self.values.tolist(), strict=True)
        ]

    def point(self, index: int) -> MetricPoint:
        return MetricPoint(
            self.metric,
            self.session,
            self.peer_asn,
            self.timestamps[index].item(),
            self.values[index].item(),
            self.labels,
        )

    def validate(self) -> None:
        """:func:`validate_points` of every point, the names checked once (on the
        first point; only a bad one is built beside it)."""
        import numpy as np

        if len(self.values):
            validate_points([self.point(0)])
        bad = ~np.isfinite(self.values) | ~np.isfinite(self.timestamps) | (self.timestamps < 0)
        if bad.any():
            validate_points([self.point(int(np.argmax(bad)))])


async def write_series(store: MetricStore, series: Sequence[SeriesPoints]) -> None:
    """Write whole series: the store's own ``write_series`` when it has one
    (VictoriaMetrics: one import line per series), else point by point."""
    fast = getattr(store, "write_series", None)
    if fast is not None:
        await fast(series)
        return
    await store.write([p for item in series for p in item.points()])


async def read_series(
    store: MetricStore,
    *,
    start: datetime,
    end: datetime,
    metrics: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    buckets: Sequence[int] | None = None,
) -> SeriesFrame:
    """:meth:`MetricStore.read` grouped by series: the store's own ``read_series``
    when it has one, else from the long frame."""
    from bgp_orchestrator.anomaly.prepare import SeriesFrame

    fast = getattr(store, "read_series", None)
    if fast is not None:
        result: SeriesFrame = await fast(
            start=start, end=end, metrics=metrics, sessions=sessions, buckets=buckets
        )
        return result
    frame = await store.read(
        start=start, end=end, metrics=metrics, sessions=sessions, buckets=buckets
    )
    return SeriesFrame.of_frame(frame)


# --- helpers shared by the implementations ----------------------------------


def validate_points(points: Sequence[MetricPoint]) -> None:
    """Raise :class:`MetricStoreError` (code ``invalid-metric-point``) on a point no
    store can keep: a bad metric or label name, an empty session, a non-finite value."""
    for point in points:
        problem = _problem(point)
        if problem is not None:
            raise MetricStoreError(
                "invalid-metric-point", f"cannot store {point!r}: {problem}", "points", point
            )


def _problem(point: MetricPoint) -> str | None:
    if not _METRIC_NAME.match(point.metric):
        return "the metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"
    if not point.session:
        return "the session is empty"
    if not math.isfinite(point.value):
        return "the value is not a finite number"
    if not math.isfinite(point.timestamp) or point.timestamp < 0:
        return "the timestamp is not a non-negative epoch second"
    for name, value in point.labels:
        if name in RESERVED_LABELS or not _LABEL_NAME.match(name):
            return f"label {name!r} is reserved or not a valid label name"
        if not value:
            return f"label {name!r} has an empty value"
    return None


def nothing_asked(names: Sequence[str] | Sequence[int] | None) -> bool:
    """True for an empty selection (an empty answer); ``None`` means everything."""
    return names is not None and len(names) == 0


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def point_ms(point: MetricPoint) -> int:
    return round(point.timestamp * 1000)


def empty_frame(columns: Sequence[str] = tuple(COLUMNS)) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=COLUMNS[c]) for c in columns})


def finish_points(frame: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The read contract on a frame with an int64 ``timestamp`` in ms: keep
    ``start <= t < end``, drop repeated writes of a point (last wins), sort, set dtypes."""
    import pandas as pd

    if frame.empty:
        return empty_frame()
    frame = frame[(frame["timestamp"] >= start_ms) & (frame["timestamp"] < end_ms)]
    frame = frame.drop_duplicates(["metric", "session", "timestamp"], keep="last")
    frame = frame.sort_values(["metric", "session", "timestamp"], kind="stable")
    out = pd.DataFrame(
        {
            "metric": frame["metric"].astype(object).to_numpy(),
            "session": frame["session"].astype(object).to_numpy(),
            "peer_asn": frame["peer_asn"].astype("int64").to_numpy(),
            "timestamp": pd.to_datetime(
                frame["timestamp"].astype("int64").to_numpy(), unit="ms", utc=True
            ),
            "value": frame["value"].astype("float64").to_numpy(),
        }
    )
    out["timestamp"] = out["timestamp"].astype(COLUMNS["timestamp"])
    return out


def finish_series(rows: Any) -> pd.DataFrame:
    """Distinct, sorted (metric, session, peer_asn) from a frame or row records."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
    if frame.empty:
        return empty_frame(SERIES_COLUMNS)
    frame = frame.astype({"metric": object, "session": object, "peer_asn": "int64"})
    frame = frame.drop_duplicates().sort_values(list(SERIES_COLUMNS), kind="stable")
    return frame.reset_index(drop=True)
