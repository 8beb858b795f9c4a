"""Anomalies from a fitted band: flagged points, merged into runs.

Consecutive flagged points of one series are one anomaly with a start and an
end; its score is the largest deviation in sigmas, its severity follows from
the score, and it keeps a window of the series around it (actual, expected,
band) so an operator can see what happened without querying the metric store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.band import Band
from bgp_orchestrator.anomaly.prepare import Prepared
from bgp_orchestrator.anomaly.series import SeriesKey

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
#: Upper score (sigmas) of each severity but the last.
SEVERITY_LIMITS: tuple[float, ...] = (5.0, 8.0, 12.0)
#: Points of context kept on each side of an anomaly.
CONTEXT = 24
_INF = float("inf")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def moments(index: pd.DatetimeIndex) -> Callable[[int], datetime]:
    """``index[i].to_pydatetime()`` without pandas boxing a Timestamp per call
    (a fitting chunk asks for tens of thousands of them)."""
    micros = index.as_unit("us").asi8
    return lambda i: _EPOCH + timedelta(microseconds=int(micros[i]))


def severity_of(score: float) -> str:
    for name, limit in zip(SEVERITIES, SEVERITY_LIMITS, strict=False):
        if score <= limit:
            return name
    return SEVERITIES[-1]


@dataclass(frozen=True)
class Anomaly:
    metric: str
    session: str
    peer_asn: int
    start_at: datetime
    end_at: datetime  # timestamp of the last flagged step
    points: int
    peak_at: datetime
    score: float
    actual: float
    expected: float
    lower: float
    upper: float
    direction: str  # "above" or "below" the band
    severity: str
    window: dict[str, Any] = field(repr=False)

    @property
    def series_id(self) -> str:
        return SeriesKey(self.metric, self.session).series_id


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the runs of True in ``flags``."""
    if not flags.any():
        return []
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _window(prepared: Prepared, band: Band, start: int, stop: int) -> dict[str, Any]:
    lo = max(0, start - CONTEXT)
    hi = min(len(prepared.values), stop + CONTEXT)

    def floats(array: np.ndarray) -> list[float | None]:
        # NaN fails both comparisons: None for it and for an infinity
        return [v if -_INF < v < _INF else None for v in np.round(array[lo:hi], 6).tolist()]

    return {
        # epoch seconds (UTC): compact, and cheap to build for thousands of anomalies
        "timestamps": (prepared.index.asi8[lo:hi] // 1_000_000_000).tolist(),
        "actual": floats(prepared.values),
        "expected": floats(band.expected),
        "lower": floats(band.lower),
        "upper": floats(band.upper),
    }


def find_anomalies(
    prepared: Prepared, band: Band, *, since: datetime | None = None
) -> list[Anomaly]:
    """The anomalies of one fitted series; with ``since``, only those that end at or
    after it (a refit every hour reports what is new, not the whole history again)."""
    key = SeriesKey.parse(prepared.series_id)
    values = prepared.values
    scores = band.scores(values)
    flags = scores > band.k
    found: list[Anomaly] = []
    runs = _runs(flags)
    if not runs:
        return found
    at = moments(prepared.index)
    for start, stop in runs:
        end_at = at(stop - 1)
        if since is not None and end_at < since:
            continue
        peak = start + int(np.argmax(scores[start:stop]))
        score = float(scores[peak])
        expected = float(band.expected[peak])
        found.append(
            Anomaly(
                metric=key.metric,
                session=key.session,
                peer_asn=prepared.peer_asn,
                start_at=at(start),
                end_at=end_at,
                points=stop - start,
                peak_at=at(peak),
                score=round(score, 4),
                actual=float(values[peak]),
                expected=expected,
                lower=float(band.lower[peak]),
                upper=float(band.upper[peak]),
                direction="above" if values[peak] > expected else "below",
                severity=severity_of(score),
                window=_window(prepared, band, start, stop),
            )
        )
    return found
