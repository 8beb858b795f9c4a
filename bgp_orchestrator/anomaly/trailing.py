"""A multivariate view of one peer or collector: its features together, against
a trailing baseline that incidents do not get into.

Real routing incidents are bursts of announcements and withdrawals on many
series at once and shifts in their mix; a per-series seasonal band sees each
series alone and, over an incident of hours, learns it as the new normal. This
detector, at every step:

1. takes each feature's trailing baseline (the ``window`` steps before it):
   median and a robust spread (1.4826 · MAD, with the 90th-percentile and a
   floor of ``min_sigma`` so a quiet series does not score infinity);
2. scores the step's feature vector as robust z-scores against it, on
   ``log1p`` of the volumes (counts are heavy-tailed: ten times the usual is
   the same surprise at 100 as at 10,000) and raw for the mix ratios;
3. flags the step when at least ``min_series`` features are more than ``k``
   from their baseline, its score the largest |z|, and counts how many moved
   (what :func:`severity_of_count` grades); with ``persist``, a step is
   reported only when it and the ``persist - 1`` before it were all flagged
   (a one-step blip is not an event; the delay grows by ``persist - 1`` steps);
4. writes the baseline's median in place of every feature it flagged, so the
   history later steps see stays the normal one while an incident goes on
   (the same cleaning as :mod:`bgp_orchestrator.anomaly.rolling`).

Nothing is fitted ahead of time: a step's verdict uses only the steps before
it, so this is rolling-origin by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bgp_orchestrator.anomaly.band import MAD_TO_SIGMA
from bgp_orchestrator.anomaly.detect import SEVERITIES
from bgp_orchestrator.errors import InvalidInput


@dataclass(frozen=True)
class TrailingParams:
    window: int = 30  # steps of trailing baseline
    min_history: int = 6  # steps needed before the first verdict
    k: float = 4.0  # robust z beyond which a feature is out of its baseline
    min_series: int = 1  # features out at once for the step to be flagged
    min_sigma: float = 0.25  # spread floor (log1p units for volumes: ~28 %)
    span: int = 1  # steps summed into each scored value (3 evens out a 30-s dump cadence)
    persist: int = 1  # consecutive out steps before one is reported (a blip is not an event)

    def __post_init__(self) -> None:
        if self.window < 2:
            raise InvalidInput("bad-window", "window must be at least 2 steps", "window")
        if not 2 <= self.min_history <= self.window:
            raise InvalidInput(
                "bad-min-history", "min_history must be in [2, window]", "min_history"
            )
        if not self.k > 0:
            raise InvalidInput("bad-sigma", "k (sigmas) must be positive", "k", self.k)
        if self.min_series < 1:
            raise InvalidInput("bad-min-series", "min_series must be at least 1", "min_series")
        if not self.min_sigma > 0:
            raise InvalidInput("bad-min-sigma", "min_sigma must be positive", "min_sigma")
        if self.span < 1:
            raise InvalidInput("bad-span", "span must be at least 1 step", "span")
        if self.persist < 1:
            raise InvalidInput("bad-persist", "persist must be at least 1 step", "persist")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrailingResult:
    scores: np.ndarray  # per step: the largest |z| over the features (0 before min_history)
    moved: np.ndarray  # per step: how many features were beyond k
    flags: np.ndarray  # per step: moved >= min_series
    z: np.ndarray  # (steps, features) robust z-scores


def severity_of_count(moved: int, total: int) -> str:
    """Severity from how many series moved together: one is ``low``, a quarter of
    them ``medium``, half ``high``, three quarters or more ``critical``."""
    if total <= 0 or moved <= 0:
        return SEVERITIES[0]
    share = moved / total
    if share >= 0.75 and moved > 1:
        return SEVERITIES[3]
    if share >= 0.5 and moved > 1:
        return SEVERITIES[2]
    if share >= 0.25 and moved > 1:
        return SEVERITIES[1]
    return SEVERITIES[0]


def mix_ratio(numerator: np.ndarray, other: np.ndarray, prior: float = 20.0) -> np.ndarray:
    """``numerator / (numerator + other + prior)`` (e.g. withdrawals' share of all
    updates: a feature of the mix, not of the volume). ``prior`` pseudo-updates
    keep a step of one withdrawal and one announcement from reading as a 50 %
    shift; a burst of hundreds is barely changed by them."""
    total = np.asarray(numerator, np.float64) + np.asarray(other, np.float64) + prior
    return np.asarray(np.asarray(numerator, np.float64) / total, dtype=np.float64)


def _summed(values: np.ndarray, span: int) -> np.ndarray:
    """Each step's sum with the ``span - 1`` steps before it (fewer at the start)."""
    if span == 1:
        return values
    cumulative = np.cumsum(np.concatenate([np.zeros((1, values.shape[1])), values]), axis=0)
    ends = np.arange(1, len(values) + 1)
    summed: np.ndarray = cumulative[ends] - cumulative[np.maximum(0, ends - span)]
    return summed


def trailing_scores(
    volumes: dict[str, np.ndarray],
    params: TrailingParams,
    *,
    ratios: dict[str, np.ndarray] | None = None,
) -> TrailingResult:
    """Score every step of the features (one array per name, all the same length):
    ``volumes`` on a log scale, ``ratios`` (values in [0, 1]) as they are."""
    ratios = ratios or {}
    names = [*volumes, *ratios]
    if not names:
        raise ValueError("no features to score")
    arrays = [np.clip(np.asarray(v, np.float64), 0, None) for v in volumes.values()]
    arrays += [np.asarray(v, np.float64) for v in ratios.values()]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"features of different lengths: {sorted(lengths)}")
    raw = np.nan_to_num(np.column_stack(arrays), nan=0.0)
    summed = _summed(raw, params.span)
    if ratios:  # a ratio is averaged over the span, not summed
        summed[:, len(volumes) :] /= np.minimum(np.arange(1, len(raw) + 1), params.span)[:, None]
    # a log volume's natural spread is about one, a ratio's about a tenth of its range
    x = np.concatenate([np.log1p(summed[:, : len(volumes)]), 10 * summed[:, len(volumes) :]], 1)
    n, width = x.shape
    z = np.zeros((n, width))
    for t in range(params.min_history, n):
        history = x[max(0, t - params.window) : t]
        median = np.median(history, axis=0)
        deviation = np.abs(history - median)
        mad = MAD_TO_SIGMA * np.median(deviation, axis=0)
        tail = np.quantile(deviation, 0.9, axis=0) / 1.645
        sigma = np.maximum(np.maximum(mad, tail), params.min_sigma)
        z[t] = (x[t] - median) / sigma
        out = np.abs(z[t]) > params.k
        if out.sum() >= params.min_series:
            x[t, out] = median[out]  # the incident stays out of later baselines
    beyond = np.abs(z) > params.k
    moved = beyond.sum(axis=1)
    flags = moved >= params.min_series
    if params.persist > 1:
        held = flags.copy()
        for back in range(1, params.persist):
            held[back:] &= flags[:-back]
            held[:back] = False
        flags = held
    return TrailingResult(scores=np.abs(z).max(axis=1), moved=moved, flags=flags, z=z)
