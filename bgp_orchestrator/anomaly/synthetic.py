"""Labelled series with a daily rhythm and injected anomalies.

For benchmarks, tuning and tests: every series is a level with a daily wave and
noise; some steps are replaced by one of three kinds of trouble an operator
knows from BGP metrics — a spike (a burst of updates), a level shift (a peer
that doubles its rate for hours, or loses part of its table) and a dropout
(the metric falls to zero: a session down). The labels mark exactly the
injected steps. Anomalies start after the second day, so every engine has a
season to learn from before the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

KINDS: tuple[str, ...] = ("spike", "level_shift", "dropout")


@dataclass(frozen=True)
class LabelledSeries:
    index: pd.DatetimeIndex  # shared by every series
    values: np.ndarray  # (series, steps)
    labels: np.ndarray  # (series, steps) bool
    sessions: list[str]
    peer_asns: np.ndarray

    def long_frame(self, metric: str) -> pd.DataFrame:
        """One row per point: metric, session, peer_asn, timestamp, value."""
        n, steps = self.values.shape
        return pd.DataFrame(
            {
                "metric": metric,
                "session": np.repeat(np.array(self.sessions, dtype=object), steps),
                "peer_asn": np.repeat(self.peer_asns, steps),
                "timestamp": np.tile(self.index.to_numpy(), n),
                "value": self.values.ravel(),
            }
        )


def session_name(number: int) -> str:
    return f"sim|10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def generate(
    series: int,
    *,
    days: int = 14,
    steps_per_day: int = 24,
    anomalies_per_series: float = 1.5,
    seed: int = 0,
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC),
) -> LabelledSeries:
    rng = np.random.default_rng(seed)
    steps = days * steps_per_day
    t = np.arange(steps)
    level = rng.lognormal(4.0, 1.0, size=(series, 1))
    amplitude = rng.uniform(0.1, 0.5, size=(series, 1)) * level
    phase = rng.uniform(0, 2 * np.pi, size=(series, 1))
    noise = rng.uniform(0.02, 0.08, size=(series, 1)) * level
    day = 2 * np.pi * t / steps_per_day
    values = level + amplitude * np.sin(day + phase) + noise * rng.standard_normal((series, steps))
    labels = np.zeros((series, steps), dtype=bool)

    counts = rng.poisson(anomalies_per_series, size=series)
    first = 2 * steps_per_day
    for row in np.flatnonzero(counts):
        for _ in range(int(counts[row])):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            begin = int(rng.integers(first, steps - 1))
            sigma = float(noise[row, 0])
            if kind == "spike":
                width = int(rng.integers(1, 3))
                sign = 1.0 if rng.random() < 0.8 else -1.0
                delta = sign * rng.uniform(8, 20) * sigma
                values[row, begin : begin + width] += delta
            elif kind == "level_shift":
                width = int(rng.integers(4, 13))
                sign = 1.0 if rng.random() < 0.5 else -1.0
                values[row, begin : begin + width] += sign * rng.uniform(6, 12) * sigma
            else:
                width = int(rng.integers(2, 7))
                values[row, begin : begin + width] = 0.0
            labels[row, begin : begin + width] = True
    np.maximum(values, 0.0, out=values)
    index = pd.date_range(start, periods=steps, freq=pd.Timedelta(days=1) / steps_per_day)
    return LabelledSeries(
        index=index,
        values=values,
        labels=labels,
        sessions=[session_name(i) for i in range(series)],
        peer_asns=64512 + np.arange(series, dtype=np.int64) % 1000,
    )
