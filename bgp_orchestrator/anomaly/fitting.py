"""Fit and detect over a frame of points: the work of one chunk of series.

Ray-free and synchronous: the fitting job runs it in Ray Data tasks, the API's
``POST /anomalies/detect`` in a thread, tests directly.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.band import Band, bands_from_expected
from bgp_orchestrator.anomaly.detect import SEVERITIES, Anomaly, find_anomalies
from bgp_orchestrator.anomaly.engines import FitParams, expected_values
from bgp_orchestrator.anomaly.multivariate import session_anomalies
from bgp_orchestrator.anomaly.prepare import Prepared, SeriesFrame, Skipped, prepare_many
from bgp_orchestrator.anomaly.series import BAND_METRICS, TRAILING_METRIC, SeriesKey
from bgp_orchestrator.anomaly.store import SeriesPoints
from bgp_orchestrator.anomaly.trailing import TrailingParams, severity_of_count

POINT_COLUMNS = ("metric", "session", "peer_asn", "timestamp", "value")


@dataclass
class FitResult:
    anomalies: list[Anomaly] = field(default_factory=list)
    fitted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    bands: list[SeriesPoints] = field(default_factory=list)
    #: The trailing multivariate detector's anomalies (engine ``trailing``), one
    #: view per session over its metrics together.
    trailing: list[Anomaly] = field(default_factory=list)
    trailing_sessions: int = 0
    #: Seconds spent per phase (prepare, fit, clean, anomalies, trailing).
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))


def prepare_frame(frame: pd.DataFrame | SeriesFrame, params: FitParams) -> list[Prepared | Skipped]:
    """One prepared (or skipped) series per (metric, session) in ``frame``."""
    points = frame if isinstance(frame, SeriesFrame) else SeriesFrame.of_frame(frame)
    if not len(points):
        return []
    return prepare_many(
        points.series_ids,
        points.peer_asns,
        points.codes,
        points.timestamps,
        points.values,
        resolution=params.resolution,
        season_length=params.season_length,
    )


def _band_points(item: Prepared, band: Band, last: int) -> list[SeriesPoints]:
    """The band's newest ``last`` steps, one series per band metric."""
    key = SeriesKey.parse(item.series_id)
    labels = (("series_metric", key.metric),)
    seconds = (item.index.asi8[-last:] // 1_000_000_000).astype(np.float64)
    out = []
    for name, array in zip(BAND_METRICS, (band.expected, band.lower, band.upper), strict=True):
        tail = array[-last:]
        keep = np.isfinite(tail)
        out.append(
            SeriesPoints(name, key.session, item.peer_asn, seconds[keep], tail[keep], labels)
        )
    return out


#: Series of one metric in a chunk from which a share of them moving together
#: raises the severity (fewer and one odd series would read as "all of them").
SPREAD_MIN_SERIES = 8


def _cleaned_bands(
    prepared: list[Prepared], bands: dict[str, Band], params: FitParams
) -> dict[str, Band]:
    """Bands of the series that had anomalies, refitted on their history with
    the flagged points replaced by the expected values (see ``FitParams.clean``)."""
    dirty: list[Prepared] = []
    for item in prepared:
        band = bands[item.series_id]
        flags = band.flags(item.values) & np.isfinite(band.expected)
        if flags.any():
            values = item.values.copy()
            values[flags] = band.expected[flags]
            dirty.append(replace(item, values=values))
    if not dirty:
        return bands
    refit = expected_values(dirty, params)
    out = dict(bands)
    originals = {item.series_id: item for item in prepared}
    refitted = bands_from_expected(
        [originals[item.series_id].values for item in dirty],
        [refit[item.series_id] for item in dirty],
        params.k,
    )
    for item, band in zip(dirty, refitted, strict=True):
        out[item.series_id] = band
    return out


def _with_spread(anomalies: list[Anomaly], fitted: Counter[str]) -> list[Anomaly]:
    """Severity raised by how many series of the same metric were anomalous at an
    anomaly's peak (:func:`~bgp_orchestrator.anomaly.trailing.severity_of_count`
    of the chunk's fitted series): many sessions moving at once is an incident
    even when each one moves a little."""
    by_metric: dict[str, list[int]] = {}
    for number, a in enumerate(anomalies):
        by_metric.setdefault(a.metric, []).append(number)
    out = list(anomalies)
    for metric, numbers in by_metric.items():
        total = fitted[metric]
        if total < SPREAD_MIN_SERIES:
            continue
        starts = np.sort([anomalies[n].start_at.timestamp() for n in numbers])
        ends = np.sort([anomalies[n].end_at.timestamp() for n in numbers])
        for n in numbers:
            peak = anomalies[n].peak_at.timestamp()
            moved = int(np.searchsorted(starts, peak, "right") - np.searchsorted(ends, peak))
            spread = severity_of_count(moved, total)
            if SEVERITIES.index(spread) > SEVERITIES.index(anomalies[n].severity):
                out[n] = replace(anomalies[n], severity=spread)
    return out


def fit_frame(
    frame: pd.DataFrame | SeriesFrame,
    params: FitParams,
    *,
    since: datetime | None = None,
    band_points: int = 0,
    trailing: TrailingParams | None = None,
) -> FitResult:
    """Fit every series of ``frame`` and find its anomalies (those ending at or
    after ``since``); with ``band_points``, also the band's newest points; with
    ``trailing``, also the trailing multivariate detector's anomalies of each
    session (:mod:`bgp_orchestrator.anomaly.multivariate`)."""
    result = FitResult()
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[phase] = result.seconds.get(phase, 0.0) + now - clock
        clock = now

    prepared: list[Prepared] = []
    for item in prepare_frame(frame, params):
        if isinstance(item, Skipped):
            result.skipped.append(item)
        else:
            prepared.append(item)
    lap("prepare")
    expected = expected_values(prepared, params)
    bands = dict(
        zip(
            (item.series_id for item in prepared),
            bands_from_expected(
                [item.values for item in prepared],
                [expected[item.series_id] for item in prepared],
                params.k,
            ),
            strict=True,
        )
    )
    lap("fit")
    if params.clean:
        bands = _cleaned_bands(prepared, bands, params)
        lap("clean")
    fitted: Counter[str] = Counter()
    for item in prepared:
        band = bands[item.series_id]
        fitted[SeriesKey.parse(item.series_id).metric] += 1
        result.anomalies.extend(find_anomalies(item, band, since=since))
        if band_points:
            result.bands.extend(_band_points(item, band, band_points))
    result.anomalies = _with_spread(result.anomalies, fitted)
    result.fitted = len(prepared)
    lap("anomalies")
    if trailing is not None:
        found, result.trailing_sessions = session_anomalies(prepared, trailing, since=since)
        result.trailing = _with_spread(found, Counter({TRAILING_METRIC: result.trailing_sessions}))
        lap("trailing")
    return result
