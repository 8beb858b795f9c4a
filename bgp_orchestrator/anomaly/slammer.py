"""The labelled SQL Slammer feature set (``anomaly/slammer-2003.csv``) as a
time-ordered benchmark for the detector.

One row per minute; columns 1-4 are the time, 5-41 BGP features, 42 the label
(+1 anomaly). The detector watches the four volume features (announcements,
withdrawals, announced and withdrawn prefixes): a minute is anomalous when any
of them leaves its band. Evaluation is rolling-origin (see
:mod:`bgp_orchestrator.anomaly.rolling`): the first half of the rows chooses
the season length and band width, the second half is scored — never a random
split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.evaluation import Scores, point_scores
from bgp_orchestrator.anomaly.rolling import rolling_scores

#: 0-based CSV columns of the volume features the detector watches.
VOLUME_COLUMNS: dict[str, int] = {
    "announcements": 4,
    "withdrawals": 5,
    "announced_prefixes": 6,
    "withdrawn_prefixes": 7,
}
LABEL_COLUMN = 41


@dataclass(frozen=True)
class Labelled:
    index: pd.DatetimeIndex
    columns: dict[str, np.ndarray]
    labels: np.ndarray


def load(path: Path) -> Labelled:
    raw = pd.read_csv(path, header=None)
    if raw.shape[1] <= LABEL_COLUMN:
        raise ValueError(f"{path}: expected {LABEL_COLUMN + 1} columns, found {raw.shape[1]}")
    index = pd.date_range("2003-01-23", periods=len(raw), freq="min", tz="UTC")
    return Labelled(
        index=index,
        columns={name: raw[c].to_numpy(np.float64) for name, c in VOLUME_COLUMNS.items()},
        labels=(raw[LABEL_COLUMN] == 1).to_numpy(),
    )


@dataclass(frozen=True)
class Evaluation:
    engine: str
    season_length: int
    k: float
    train: Scores
    test: Scores
    split_row: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "season_length": self.season_length,
            "k": self.k,
            "split_row": self.split_row,
            "train": self.train.as_dict(),
            "test": self.test.as_dict(),
        }


def evaluate(
    data: Labelled,
    base: FitParams,
    *,
    seasons: tuple[int, ...] = (60, 1440),
    ks: tuple[float, ...] = (3.0, 4.0, 5.0, 6.0, 8.0),
    step: int = 60,
) -> Evaluation:
    """Choose season and k by F1 on the first half, report both halves."""
    n = len(data.labels)
    split = n // 2
    best: Evaluation | None = None
    for season in seasons:
        for k in ks:
            params = replace(base, season_length=season, k=k, resolution_s=60)
            first = max(2 * season + 1, 180)
            scores = rolling_scores(data.index, data.columns, params, first=first, step=step)
            flags = np.zeros(n, dtype=bool)
            for values in scores.values():
                flags |= values > k
            train = point_scores(flags[first:split], data.labels[first:split])
            if best is None or train.f1 > best.train.f1:
                test = point_scores(flags[split:], data.labels[split:])
                best = Evaluation(base.engine, season, k, train, test, split)
    assert best is not None
    return best
