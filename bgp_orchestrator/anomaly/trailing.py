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
   (the same cleaning as :mod:`bgp_orchestrator.anomaly.rolling`);
5. with ``hold_k``, once a step is flagged the incident goes on (and is kept
   out of the baseline) while ``min_series`` features stay beyond ``hold_k``,
   a lower bar than ``k``: an incident that decays slowly, like a worm's hours
   of tail, is otherwise let into the baseline step by step as each feature
   dips under ``k``, and becomes the normal it is judged against. Only the
   start of an incident needs ``k`` (and ``persist``); a step after a quiet
   one is judged by ``k`` alone, so the lower bar adds no new alarm.

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
    hold_k: float = 0.0  # an incident goes on while features stay beyond this (0: k)

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
        if not 0 <= self.hold_k <= self.k:
            raise InvalidInput("bad-hold", "hold_k must be in [0, k]", "hold_k", self.hold_k)

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


@dataclass(frozen=True)
class TrailingBatch:
    """:func:`trailing_many`'s answer for ``S`` series of ``T`` steps and ``F`` features."""

    z: np.ndarray  # (S, F, T) robust z-scores (0 before min_history)
    median: np.ndarray  # (S, F, T) the baseline's median, in the scored scale
    sigma: np.ndarray  # (S, F, T) the baseline's spread, in the scored scale (0 before)
    moved: np.ndarray  # (S, T) features beyond k
    flags: np.ndarray  # (S, T) reported steps (min_series beyond k ``persist`` steps, then hold_k)

    @property
    def scores(self) -> np.ndarray:
        """(S, T): the largest |z| over the features."""
        return np.asarray(np.abs(self.z).max(axis=1))


def scaled(volumes: np.ndarray, ratios: np.ndarray | None, span: int) -> np.ndarray:
    """The scored scale of ``volumes`` (S, Fv, T) and ``ratios`` (S, Fr, T): summed
    over ``span`` steps, ``log1p`` of the volumes, ten times the ratios (a log
    volume's natural spread is about one, a ratio's about a tenth of its range);
    (S, Fv + Fr, T)."""
    parts = [np.clip(np.nan_to_num(np.asarray(volumes, np.float64), nan=0.0), 0, None)]
    if ratios is not None and ratios.shape[1]:
        parts.append(np.nan_to_num(np.asarray(ratios, np.float64), nan=0.0))
    raw = np.concatenate(parts, axis=1)
    n = raw.shape[2]
    if span > 1:
        cumulative = np.concatenate([np.zeros((*raw.shape[:2], 1)), np.cumsum(raw, axis=2)], 2)
        ends = np.arange(1, n + 1)
        raw = cumulative[..., ends] - cumulative[..., np.maximum(0, ends - span)]
    width = parts[0].shape[1]
    out = np.empty_like(raw)
    out[:, :width] = np.log1p(raw[:, :width])
    if raw.shape[1] > width:  # a ratio is averaged over the span, not summed
        out[:, width:] = 10 * raw[:, width:] / np.minimum(np.arange(1, n + 1), span)
    return out


def trailing_many(x: np.ndarray, params: TrailingParams) -> TrailingBatch:
    """Score ``S`` series at once, ``x`` (S, F, T) in the scored scale (see
    :func:`scaled`); each series as :func:`trailing_scores` would alone. One
    step at a time (a flagged value is replaced before the next step's
    baseline), every series together: one sort of the window per step, time
    the last, contiguous axis."""
    x = np.array(x, dtype=np.float64, order="C")
    s, width, n = x.shape
    z = np.zeros((s, width, n))
    medians = np.zeros((s, width, n))
    sigmas = np.zeros((s, width, n))
    going = np.zeros(s, dtype=bool)  # per series: the step before was in an incident
    carried = np.zeros((s, n), dtype=bool)  # steps in an incident (beyond k, or hold_k after one)
    for t in range(params.min_history, n):
        history = x[..., max(0, t - params.window) : t]
        size = history.shape[-1]
        low, high = (size - 1) // 2, size // 2
        ordered = np.sort(history, axis=-1)
        median = (ordered[..., low] + ordered[..., high]) / 2
        deviation = np.sort(np.abs(history - median[..., None]), axis=-1)
        mad = MAD_TO_SIGMA * (deviation[..., low] + deviation[..., high]) / 2
        at = 0.9 * (size - 1)  # numpy's default (linear) 90th percentile
        below = int(at)
        above = min(below + 1, size - 1)
        tail = deviation[..., below] + (deviation[..., above] - deviation[..., below]) * (
            at - below
        )
        sigma = np.maximum(np.maximum(mad, tail / 1.645), params.min_sigma)
        zt = (x[..., t] - median) / sigma
        out = np.abs(zt) > params.k
        step = out.sum(axis=1) >= params.min_series
        if params.hold_k:
            held_out = (np.abs(zt) > params.hold_k) & going[:, None]
            step |= held_out.sum(axis=1) >= params.min_series
            out |= held_out
        # the incident stays out of later baselines
        out &= step[:, None]
        x[..., t] = np.where(out, median, x[..., t])
        going = step
        carried[:, t] = step
        z[..., t], medians[..., t], sigmas[..., t] = zt, median, sigma
    moved = (np.abs(z) > params.k).sum(axis=1)
    flags = moved >= params.min_series
    if params.persist > 1:
        held = flags.copy()
        for back in range(1, params.persist):
            held[:, back:] &= flags[:, :-back]
            held[:, :back] = False
        flags = held
    if params.hold_k:  # a reported incident goes on while its steps are carried
        for t in range(1, n):
            flags[:, t] |= flags[:, t - 1] & carried[:, t]
    return TrailingBatch(z=z, median=medians, sigma=sigmas, moved=moved, flags=flags)


def trailing_scores(
    volumes: dict[str, np.ndarray],
    params: TrailingParams,
    *,
    ratios: dict[str, np.ndarray] | None = None,
) -> TrailingResult:
    """Score every step of the features (one array per name, all the same length):
    ``volumes`` on a log scale, ``ratios`` (values in [0, 1]) as they are."""
    ratios = ratios or {}
    if not volumes and not ratios:
        raise ValueError("no features to score")
    arrays = [np.asarray(v, np.float64) for v in (*volumes.values(), *ratios.values())]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"features of different lengths: {sorted(lengths)}")
    n = lengths.pop()
    vol = np.stack(arrays[: len(volumes)])[None] if volumes else np.zeros((1, 0, n))
    rat = np.stack(arrays[len(volumes) :])[None] if ratios else None
    batch = trailing_many(scaled(vol, rat, params.span), params)
    z = batch.z[0].T
    return TrailingResult(
        scores=np.abs(z).max(axis=1), moved=batch.moved[0], flags=batch.flags[0], z=z
    )
