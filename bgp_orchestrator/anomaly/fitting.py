"""Fit and detect over a frame of points: the work of one chunk of series.

Ray-free and synchronous: the fitting job runs it in Ray Data tasks, the API's
``POST /anomalies/detect`` in a thread, tests directly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.band import Band, band_from_expected
from bgp_orchestrator.anomaly.detect import Anomaly, find_anomalies
from bgp_orchestrator.anomaly.engines import FitParams, expected_values
from bgp_orchestrator.anomaly.prepare import Prepared, Skipped, prepare_many
from bgp_orchestrator.anomaly.series import BAND_METRICS, MetricPoint, SeriesKey

POINT_COLUMNS = ("metric", "session", "peer_asn", "timestamp", "value")


@dataclass
class FitResult:
    anomalies: list[Anomaly] = field(default_factory=list)
    fitted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    bands: list[MetricPoint] = field(default_factory=list)

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))


def prepare_frame(frame: pd.DataFrame, params: FitParams) -> list[Prepared | Skipped]:
    """One prepared (or skipped) series per (metric, session) in ``frame``."""
    if frame.empty:
        return []
    ordered = frame.sort_values(["metric", "session", "timestamp"], kind="stable")
    keys = ordered["metric"].astype(str) + "/" + ordered["session"].astype(str)
    codes, names = pd.factorize(keys, sort=False)
    asns = ordered["peer_asn"].to_numpy()
    first_of = np.searchsorted(codes, np.arange(len(names)))
    return prepare_many(
        [str(n) for n in names],
        asns[first_of],
        codes,
        pd.DatetimeIndex(ordered["timestamp"]),
        ordered["value"].to_numpy(np.float64),
        resolution=params.resolution,
        season_length=params.season_length,
    )


def _band_points(item: Prepared, band: Band, last: int) -> list[MetricPoint]:
    key = SeriesKey.parse(item.series_id)
    labels = (("series_metric", key.metric),)
    points: list[MetricPoint] = []
    seconds = (item.index.asi8[-last:] // 1_000_000_000).astype(np.float64)
    for name, array in zip(BAND_METRICS, (band.expected, band.lower, band.upper), strict=True):
        tail = array[-last:]
        keep = np.isfinite(tail)
        session, asn = key.session, item.peer_asn
        points.extend(
            MetricPoint(name, session, asn, ts, value, labels)
            for ts, value in zip(seconds[keep].tolist(), tail[keep].tolist(), strict=True)
        )
    return points


def fit_frame(
    frame: pd.DataFrame,
    params: FitParams,
    *,
    since: datetime | None = None,
    band_points: int = 0,
) -> FitResult:
    """Fit every series of ``frame`` and find its anomalies (those ending at or
    after ``since``); with ``band_points``, also the band's newest points."""
    result = FitResult()
    prepared: list[Prepared] = []
    for item in prepare_frame(frame, params):
        if isinstance(item, Skipped):
            result.skipped.append(item)
        else:
            prepared.append(item)
    expected = expected_values(prepared, params)
    for item in prepared:
        band = band_from_expected(item.values, expected[item.series_id], params.k)
        result.anomalies.extend(find_anomalies(item, band, since=since))
        if band_points:
            result.bands.extend(_band_points(item, band, band_points))
    result.fitted = len(prepared)
    return result
