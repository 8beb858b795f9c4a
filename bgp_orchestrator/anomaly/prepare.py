"""Turning raw points into regular series a seasonal model can fit.

Each series is resampled to one value per ``resolution`` (the mean of the points
in each step). A series is fitted only when it can be: the outcome of every
series is either a regular array or a skip with a reason an operator can read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Reasons a series is not fitted (stable strings: stored and counted per run).
TOO_SHORT = "too-short"
CONSTANT = "constant"
TOO_SPARSE = "too-sparse"


@dataclass(frozen=True)
class Prepared:
    """One regular series: ``values[i]`` is the mean in ``[index[i], index[i] + step)``."""

    series_id: str
    peer_asn: int
    index: pd.DatetimeIndex
    values: np.ndarray
    filled: int  # missing steps filled by interpolation


@dataclass(frozen=True)
class Skipped:
    series_id: str
    reason: str
    detail: str


def prepare(
    series_id: str,
    peer_asn: int,
    timestamps: pd.Series,
    values: pd.Series,
    *,
    resolution: pd.Timedelta,
    season_length: int,
    max_gap_share: float = 0.2,
) -> Prepared | Skipped:
    """Resample one series; skip it when it is shorter than two seasons plus a
    point, has more than ``max_gap_share`` missing steps, or never varies."""
    frame = pd.Series(values.to_numpy(np.float64), index=pd.DatetimeIndex(timestamps))
    frame = frame[np.isfinite(frame.to_numpy())]
    if frame.empty:
        return Skipped(series_id, TOO_SHORT, "no finite points")
    regular = frame.resample(resolution).mean()
    steps = len(regular)
    needed = 2 * season_length + 1
    if steps < needed:
        return Skipped(
            series_id,
            TOO_SHORT,
            f"{steps} steps of {resolution}; a season of {season_length} needs at least {needed}",
        )
    missing = int(regular.isna().sum())
    if missing > max_gap_share * steps:
        return Skipped(
            series_id,
            TOO_SPARSE,
            f"{missing} of {steps} steps have no points (more than {max_gap_share:.0%})",
        )
    if missing:
        regular = regular.interpolate(limit_direction="both")
    array = regular.to_numpy(np.float64)
    if np.ptp(array) == 0.0:
        return Skipped(series_id, CONSTANT, f"every step is {array[0]:g}: nothing to model")
    index = pd.DatetimeIndex(regular.index)
    return Prepared(series_id, peer_asn, index, array, missing)
