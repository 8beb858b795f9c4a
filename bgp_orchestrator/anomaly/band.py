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
