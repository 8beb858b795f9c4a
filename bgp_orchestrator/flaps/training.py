"""Training data, the time-based split, XGBoost parameters and the evaluation report.

Ray-free: the job in ``jobs/train_flap_model.py`` wires these into Ray Data,
Ray Train and Ray Tune; the benchmark runs the same functions in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bgp_orchestrator.flaps.features import (
    FEATURES,
    LABEL,
    TIMESTAMP,
    baseline_score,
)

# A good default found with `--tune` on the simulated data; Tune searches around it.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": ["logloss", "aucpr"],
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.15,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5.0,
    "max_bin": 128,
}
DEFAULT_ROUNDS = 120


@dataclass(frozen=True)
class LabelSpec:
    """What a flap is: the session goes down, or withdraws at least ``withdraw_share``
    of its prefixes, within ``horizon_s`` after a window of ``window_s``."""

    window_s: int = 300
    horizon_s: int = 1800
    withdraw_share: float = 0.5


@dataclass(frozen=True)
class Split:
    """Time boundaries: train before ``valid_from``, validation until ``test_from``,
    test after. Never random: a model must not learn from the future."""

    valid_from: pd.Timestamp
    test_from: pd.Timestamp
    first: pd.Timestamp
    last: pd.Timestamp

    def part(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        t = frame[TIMESTAMP]
        if name == "train":
            return frame[t < self.valid_from]
        if name == "validation":
            return frame[(t >= self.valid_from) & (t < self.test_from)]
        if name == "test":
            return frame[t >= self.test_from]
        raise ValueError(f"unknown part {name!r}")


def time_split(timestamps: pd.Series, valid_share: float = 0.15, test_share: float = 0.15) -> Split:
    """Boundaries at the time quantiles that leave the given shares for validation and test."""
    if not (0 < valid_share < 1 and 0 < test_share < 1 and valid_share + test_share < 1):
        raise ValueError("valid_share and test_share must be in (0, 1) and sum below 1")
    distinct = np.sort(pd.to_datetime(timestamps, utc=True).unique())
    if len(distinct) < 3:
        raise ValueError(
            f"a time-based split needs at least 3 distinct windows, the data has {len(distinct)}"
        )
    valid_i = min(len(distinct) - 2, max(1, int(len(distinct) * (1 - valid_share - test_share))))
    test_i = min(len(distinct) - 1, max(valid_i + 1, int(len(distinct) * (1 - test_share))))
    return Split(
        pd.Timestamp(distinct[valid_i]),
        pd.Timestamp(distinct[test_i]),
        pd.Timestamp(distinct[0]),
        pd.Timestamp(distinct[-1]),
    )


def xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's input matrix (float32, :data:`FEATURES` order) and labels."""
    return (
        frame[list(FEATURES)].to_numpy(np.float32),
        frame[LABEL].to_numpy(np.float32),
    )


def _calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total


def evaluate(y: np.ndarray, scores: np.ndarray, probabilities: bool = True) -> dict[str, float]:
    """ROC-AUC, PR-AUC, precision in the top 1 % of sessions and, for
    probabilities, the Brier score and the expected calibration error."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(y, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("evaluation needs both flapping and stable windows in the test part")
    top = max(1, int(len(scores) * 0.01))
    order = np.argsort(-scores, kind="stable")[:top]
    metrics = {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "precision_top_1pct": float(y[order].mean()),
        "positives": float(y.mean()),
        "rows": float(len(y)),
    }
    if probabilities:
        metrics["brier"] = float(brier_score_loss(y, scores))
        metrics["calibration_error"] = float(_calibration_error(y, scores))
    return metrics


def baseline_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """The recent-flap-count rule on the same rows."""
    return evaluate(frame[LABEL].to_numpy(), baseline_score(frame), probabilities=False)
