"""From a model's expected values to a band, per-point scores and flags.

The band is ``expected ± k · sigma`` where ``sigma`` is a robust estimate of the
residuals' spread (1.4826 · MAD, so the anomalies being looked for do not widen
the band that should catch them). ``k = 3`` is the classic 3-sigma band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Band:
    expected: np.ndarray  # NaN where the model has no fitted value (warm-up)
    sigma: float
    k: float

    @property
    def lower(self) -> np.ndarray:
        return self.expected - self.k * self.sigma

    @property
    def upper(self) -> np.ndarray:
        return self.expected + self.k * self.sigma

    def scores(self, values: np.ndarray) -> np.ndarray:
        """|actual - expected| in sigmas (0 where there is no expected value)."""
        with np.errstate(invalid="ignore"):
            score = np.abs(values - self.expected) / self.sigma
        scores: np.ndarray = np.nan_to_num(score, nan=0.0)
        return scores

    def flags(self, values: np.ndarray) -> np.ndarray:
        return self.scores(values) > self.k


def robust_sigma(residuals: np.ndarray, values: np.ndarray) -> float:
    """Spread of the residuals, robust to the anomalies and never zero.

    1.4826 · MAD estimates sigma for normal residuals while ignoring up to half
    of them; series that are mostly flat (a quiet session's withdrawals) have a
    MAD of 0, so the 90th percentile of the absolute deviations (/ 1.645, also
    sigma for normal residuals, robust to 10 % of outliers) and a floor relative
    to the series' level keep every small blip from scoring infinity.
    """
    finite = residuals[np.isfinite(residuals)]
    if finite.size == 0:
        return 1.0
    deviations = np.abs(finite - np.median(finite))
    mad = MAD_TO_SIGMA * float(np.median(deviations))
    tail = float(np.quantile(deviations, 0.9)) / 1.645
    floor = 1e-3 * max(1.0, float(np.mean(np.abs(values))))
    return max(mad, tail, floor)


def band_from_expected(values: np.ndarray, expected: np.ndarray, k: float) -> Band:
    return Band(expected, robust_sigma(values - expected, values), k)


def bands_from_expected(
    values: list[np.ndarray], expected: list[np.ndarray], k: float
) -> list[Band]:
    """:func:`band_from_expected` of many series, the same bands: series of one
    length whose expected values are missing at the same steps (a model's
    warm-up) get their spreads in one pass over a matrix, the others one by one.
    One call per series cost more than the seasonal model's own fit."""
    sigmas: list[float | None] = [None] * len(values)
    groups: dict[tuple[int, bytes], list[int]] = {}
    for number, (v, e) in enumerate(zip(values, expected, strict=True)):
        finite = np.isfinite(v - e)
        groups.setdefault((len(v), np.packbits(finite).tobytes()), []).append(number)
    for numbers in groups.values():
        if len(numbers) == 1:
            n = numbers[0]
            sigmas[n] = robust_sigma(values[n] - expected[n], values[n])
            continue
        v = np.stack([values[n] for n in numbers])
        residuals = v - np.stack([expected[n] for n in numbers])
        finite = np.isfinite(residuals[0])
        if not finite.any():
            for n in numbers:
                sigmas[n] = 1.0
            continue
        r = np.ascontiguousarray(residuals[:, finite])
        deviations = np.abs(r - np.median(r, axis=1)[:, None])
        mad = MAD_TO_SIGMA * np.median(deviations, axis=1)
        tail = np.quantile(deviations, 0.9, axis=1) / 1.645
        floor = 1e-3 * np.maximum(1.0, np.mean(np.abs(v), axis=1))
        for n, sigma in zip(
            numbers, np.maximum(np.maximum(mad, tail), floor).tolist(), strict=True
        ):
            sigmas[n] = float(sigma)
    return [Band(e, float(s), k) for e, s in zip(expected, sigmas, strict=True) if s is not None]
