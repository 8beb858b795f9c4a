"""Turning raw points into regular series a seasonal model can fit.

Each series is resampled to one value per ``resolution`` (the mean of the points
in each step). A series is fitted only when it can be: the outcome of every
series is either a regular array or a skip with a reason an operator can read.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _checked(
    series_id: str,
    peer_asn: int,
    index: pd.DatetimeIndex,
    regular: np.ndarray,
    *,
    resolution: pd.Timedelta,
    season_length: int,
    max_gap_share: float,
) -> Prepared | Skipped:
    """The outcome of one series already on its regular steps (NaN = no point)."""
    steps = len(regular)
    needed = 2 * season_length + 1
    if steps < needed:
        return Skipped(
            series_id,
            TOO_SHORT,
            f"{steps} steps of {resolution}; a season of {season_length} needs at least {needed}",
        )
    missing_at = np.isnan(regular)
    missing = int(missing_at.sum())
    if missing > max_gap_share * steps:
        return Skipped(
            series_id,
            TOO_SPARSE,
            f"{missing} of {steps} steps have no points (more than {max_gap_share:.0%})",
        )
    array = regular
    if missing:
        # linear between neighbours, the nearest value at either end
        positions = np.arange(steps)
        array = regular.copy()
        array[missing_at] = np.interp(
            positions[missing_at], positions[~missing_at], regular[~missing_at]
        )
    if np.ptp(array) == 0.0:
        return Skipped(series_id, CONSTANT, f"every step is {array[0]:g}: nothing to model")
    return Prepared(series_id, peer_asn, index, array, missing)


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
    return _checked(
        series_id,
        peer_asn,
        pd.DatetimeIndex(regular.index),
        regular.to_numpy(np.float64),
        resolution=resolution,
        season_length=season_length,
        max_gap_share=max_gap_share,
    )


def prepare_many(
    series_ids: Sequence[str],
    peer_asns: np.ndarray,
    codes: np.ndarray,
    timestamps: pd.DatetimeIndex,
    values: np.ndarray,
    *,
    resolution: pd.Timedelta,
    season_length: int,
    max_gap_share: float = 0.2,
) -> list[Prepared | Skipped]:
    """:func:`prepare` of many series at once, the same outcomes: point ``i`` is of
    series ``codes[i]`` (points sorted by series, then time; ``peer_asns`` per
    series). The steps are pandas' (``resample``'s default origin: midnight UTC
    of each series' first day), the per-step means one numpy pass for all of
    them, where one ``resample`` per series cost most of a fitting job's time."""
    step = int(resolution.value)
    ns = timestamps.as_unit("ns").asi8
    finite = np.isfinite(values)
    codes, ns, values = codes[finite], ns[finite], values[finite]
    out: list[Prepared | Skipped] = []
    if len(codes) == 0:
        return [Skipped(str(s), TOO_SHORT, "no finite points") for s in series_ids]
    starts = np.searchsorted(codes, np.arange(len(series_ids)), side="left")
    stops = np.searchsorted(codes, np.arange(len(series_ids)), side="right")
    day = 86_400 * 1_000_000_000
    first_ns = ns[np.minimum(starts, len(ns) - 1)]
    origin = (first_ns // day) * day  # per series
    bins = (ns - origin[codes]) // step
    # one group per (series, step): points are sorted by series and time
    new_group = np.concatenate([[True], (np.diff(codes) != 0) | (np.diff(bins) != 0)])
    group_at = np.flatnonzero(new_group)
    sums = np.add.reduceat(values, group_at)
    counts = np.diff(np.append(group_at, len(values)))
    means = sums / counts
    group_code = codes[group_at]
    group_bin = bins[group_at]
    group_starts = np.searchsorted(group_code, np.arange(len(series_ids)), side="left")
    group_stops = np.searchsorted(group_code, np.arange(len(series_ids)), side="right")
    indexes: dict[tuple[int, int, int], pd.DatetimeIndex] = {}
    for number, series_id in enumerate(series_ids):
        if starts[number] == stops[number]:
            out.append(Skipped(str(series_id), TOO_SHORT, "no finite points"))
            continue
        lo, hi = group_starts[number], group_stops[number]
        own_bins = group_bin[lo:hi]
        first_bin = int(own_bins[0])
        regular = np.full(int(own_bins[-1]) - first_bin + 1, np.nan)
        regular[own_bins - first_bin] = means[lo:hi]
        grid = (int(origin[number]), first_bin, len(regular))
        index = indexes.get(grid)
        if index is None:  # series of one chunk mostly share their steps: built once
            index = pd.DatetimeIndex(
                pd.DatetimeIndex(
                    origin[number] + (first_bin + np.arange(len(regular))) * step, tz="UTC"
                ).as_unit(timestamps.unit),
                freq=resolution,
            )
            indexes[grid] = index
        out.append(
            _checked(
                str(series_id),
                int(peer_asns[number]),
                index,
                regular,
                resolution=resolution,
                season_length=season_length,
                max_gap_share=max_gap_share,
            )
        )
    return out


@dataclass(frozen=True)
class SeriesFrame:
    """Raw points grouped by series, the shape :func:`prepare_many` takes: point
    ``i`` is of series ``codes[i]``, points sorted by series then time. What the
    fitting job reads (a long frame of one row per point with a string per row
    cost more to build and sort than the model's fit)."""

    series_ids: list[str]  # ``metric/session``
    peer_asns: np.ndarray  # per series
    codes: np.ndarray  # per point
    timestamps: pd.DatetimeIndex  # per point, UTC
    values: np.ndarray  # per point

    def __len__(self) -> int:
        return len(self.series_ids)

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> SeriesFrame:
        """From a metric store's long frame (``metric, session, peer_asn, timestamp,
        value``); a series' peer ASN is that of its first point."""
        if frame.empty:
            empty = np.empty(0, np.int64)
            return cls([], empty, empty, pd.DatetimeIndex([], tz="UTC"), np.empty(0))
        ordered = frame.sort_values(["metric", "session", "timestamp"], kind="stable")
        keys = ordered["metric"].astype(str) + "/" + ordered["session"].astype(str)
        codes, names = pd.factorize(keys, sort=False)
        asns = ordered["peer_asn"].to_numpy()
        first_of = np.searchsorted(codes, np.arange(len(names)))
        return cls(
            [str(n) for n in names],
            asns[first_of],
            codes,
            pd.DatetimeIndex(ordered["timestamp"]),
            ordered["value"].to_numpy(np.float64),
        )

    def to_frame(self) -> pd.DataFrame:
        """The long frame again (for a caller that wants rows)."""
        keys = [s.split("/", 1) for s in self.series_ids]
        metric = np.asarray([k[0] for k in keys], dtype=object)
        session = np.asarray([k[1] for k in keys], dtype=object)
        return pd.DataFrame(
            {
                "metric": metric[self.codes],
                "session": session[self.codes],
                "peer_asn": np.asarray(self.peer_asns, np.int64)[self.codes],
                "timestamp": self.timestamps,
                "value": self.values,
            }
        )
