"""Event-level scores: was each incident caught, how soon, and how many false alarms.

What an operator lives with, where point-wise F1 is what a model is tuned on.
An *incident* is a run of consecutive labelled steps; an *anomaly* is a run of
consecutive flagged steps (what the detector reports as one alarm).

- an incident is **detected** when at least one flagged step lies inside it;
  its **delay** is the time from its first step to its first flagged step (an
  alarm already raised when the incident starts counts, delay 0);
- a **false event** is an anomaly that overlaps no incident; false events per
  day divide their count by the scored span.

Only steps from ``first`` on are scored (a rolling-origin evaluation has no
verdict before its first origin): incidents that end before it are not
counted, one that straddles it is counted from ``first``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bgp_orchestrator.anomaly.evaluation import Scores, point_scores


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index pairs of the runs of True in ``flags``."""
    flags = np.asarray(flags, dtype=bool)
    if not flags.any():
        return []
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


@dataclass(frozen=True)
class EventScores:
    incidents: int
    detected: int
    event_recall: float  # detected / incidents (0 when there is no incident)
    delays_min: tuple[float, ...]  # one per detected incident, in order
    median_delay_min: float | None  # None when nothing was detected
    false_events: int
    days: float
    false_events_per_day: float
    points: Scores  # point-wise P/R/F1 over the same scored steps

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["delays_min"] = list(self.delays_min)
        out["points"] = self.points.as_dict()
        return out


def event_scores(
    flags: np.ndarray, labels: np.ndarray, *, step_s: float, first: int = 0
) -> EventScores:
    """Event recall, detection delays and false events of ``flags`` against
    ``labels`` (both one value per step of ``step_s`` seconds), from step ``first``."""
    flags = np.asarray(flags, dtype=bool)[first:]
    labels = np.asarray(labels, dtype=bool)[first:]
    if flags.shape != labels.shape:
        raise ValueError(f"flags {flags.shape} and labels {labels.shape} differ in shape")
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    incidents = runs(labels)
    delays: list[float] = []
    for start, stop in incidents:
        inside = np.flatnonzero(flags[start:stop])
        if inside.size:
            delays.append(round(float(inside[0]) * step_s / 60, 4))
    false_events = sum(1 for start, stop in runs(flags) if not labels[start:stop].any())
    days = len(flags) * step_s / 86400
    return EventScores(
        incidents=len(incidents),
        detected=len(delays),
        event_recall=round(len(delays) / len(incidents), 4) if incidents else 0.0,
        delays_min=tuple(delays),
        median_delay_min=round(float(np.median(delays)), 4) if delays else None,
        false_events=false_events,
        days=round(days, 6),
        false_events_per_day=round(false_events / days, 3) if days else 0.0,
        points=point_scores(flags, labels),
    )
