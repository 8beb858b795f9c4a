"""Detectors scored on real labelled incidents, event by event, time-ordered.

A :class:`Case` is one labelled series set in a common shape (the Slammer
minutes, or a collector's 10-s steps from an MRT dump, see
:mod:`bgp_orchestrator.anomaly.mrtsets`). Each detector judges a step only from
the steps before it:

- ``trailing`` (:mod:`bgp_orchestrator.anomaly.trailing`): the collector's
  volumes and withdrawal share together against a cleaned trailing baseline,
  plus the per-peer view (several peers out of their own baselines at once);
- ``statsforecast`` and ``prophet``: the per-series seasonal bands, refitted
  rolling-origin (:func:`bgp_orchestrator.anomaly.rolling.rolling_scores`); a
  step is flagged when any volume series leaves its band.

Every detector of a case is scored from the same first step (the latest any of
them can start at), by :func:`bgp_orchestrator.anomaly.events.event_scores`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.events import EventScores, event_scores
from bgp_orchestrator.anomaly.mrtsets import RealSet
from bgp_orchestrator.anomaly.rolling import rolling_scores
from bgp_orchestrator.anomaly.slammer import Labelled
from bgp_orchestrator.anomaly.trailing import TrailingParams, mix_ratio, trailing_scores

DETECTORS: tuple[str, ...] = ("trailing", "statsforecast", "prophet")


@dataclass(frozen=True)
class Case:
    name: str
    step_s: int
    index: pd.DatetimeIndex
    columns: dict[str, np.ndarray]  # volume features of the collector
    ratios: dict[str, np.ndarray]  # mix features in [0, 1]
    labels: np.ndarray
    band: FitParams  # season and k of the seasonal bands on this case
    trailing: TrailingParams
    peers: dict[str, np.ndarray] = field(default_factory=dict)
    band_step: int = 1  # steps between refits of the seasonal bands
    prophet_step: int = 3
    #: Peers with session state changes, and those of them that sent no update
    #: (their state-change incidents are invisible to every update feature).
    state_peers: int = 0
    silent_state_peers: int = 0

    @property
    def first(self) -> int:
        """The first scored step: every detector has its history by then."""
        return max(2 * self.band.season_length + 1, self.trailing.min_history)


#: The trailing detector's settings, the same on every case but for the
#: baseline's length and span: chosen by measurement over Slammer and the MRT
#: sets together (k 3.5-5, spread floor 0.5-0.75, persistence 1-3 tried; k 5,
#: floor 0.5, 3 steps kept every incident the volumes show with the fewest
#: false events; the grid is in bench/README.md).
MRT_TRAILING = TrailingParams(
    window=30, min_history=6, k=5.0, min_series=1, min_sigma=0.5, span=3, persist=3
)
SLAMMER_TRAILING = TrailingParams(
    window=60, min_history=30, k=5.0, min_series=1, min_sigma=0.5, persist=3
)
#: Peers out of their own baselines at once for the per-peer view to flag a step.
PEERS_TOGETHER = 3


def from_slammer(data: Labelled, band: FitParams | None = None) -> Case:
    """The Slammer minutes; bands as the project chose them there (a day's season)."""
    band = band or FitParams(season_length=1440, k=3.0, resolution_s=60)
    return Case(
        name="slammer-2003",
        step_s=60,
        index=data.index,
        columns=dict(data.columns),
        ratios={
            "withdrawn_share": mix_ratio(
                data.columns["withdrawn_prefixes"], data.columns["announced_prefixes"]
            )
        },
        labels=data.labels,
        band=band,
        trailing=SLAMMER_TRAILING,
        band_step=60,
        prophet_step=240,
    )


def from_realset(data: RealSet, band: FitParams | None = None) -> Case:
    """A collector's 10-s steps; bands with a one-minute season (no longer rhythm
    fits in a 5-15 minute dump)."""
    band = band or FitParams(season_length=6, k=3.0, resolution_s=data.step_s)
    volumes = {k: v for k, v in data.columns.items() if k != "active_peers"}
    return Case(
        name=data.name,
        step_s=data.step_s,
        index=data.index,
        columns=volumes,
        ratios={
            "withdrawal_share": mix_ratio(data.columns["withdrawals"], volumes["announcements"])
        },
        labels=data.labels,
        band=band,
        trailing=MRT_TRAILING,
        peers=dict(data.peers),
        state_peers=len(data.state_peers),
        silent_state_peers=len(data.silent_state_peers),
    )


def trailing_flags(case: Case, params: TrailingParams | None = None) -> np.ndarray:
    params = params or case.trailing
    flags = trailing_scores(case.columns, params, ratios=case.ratios).flags
    if len(case.peers) >= PEERS_TOGETHER:
        together = replace(params, min_series=PEERS_TOGETHER)
        flags = flags | trailing_scores(case.peers, together).flags
    return flags


def band_flags(case: Case, engine: str) -> np.ndarray:
    params = replace(case.band, engine=engine)
    step = case.prophet_step if engine == "prophet" else case.band_step
    scores = rolling_scores(case.index, case.columns, params, first=case.first, step=step)
    flags = np.zeros(len(case.labels), dtype=bool)
    for values in scores.values():
        flags |= values > params.k
    return flags


@dataclass(frozen=True)
class Outcome:
    case: str
    detector: str
    scores: EventScores
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "detector": self.detector,
            "seconds": self.seconds,
            **self.scores.as_dict(),
        }


def evaluate(case: Case, detector: str) -> Outcome:
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; known: {', '.join(DETECTORS)}")
    started = time.perf_counter()
    flags = trailing_flags(case) if detector == "trailing" else band_flags(case, detector)
    seconds = round(time.perf_counter() - started, 2)
    scores = event_scores(flags, case.labels, step_s=case.step_s, first=case.first)
    return Outcome(case.name, detector, scores, seconds)


def cases(data_dir: Path) -> list[Case]:
    """Slammer (when present) and every MRT set of the shared data folder."""
    from bgp_orchestrator.anomaly import mrtsets, slammer

    out = [from_realset(s) for s in mrtsets.load_all(data_dir)]
    path = data_dir / "anomaly" / "slammer-2003.csv"
    if path.exists():
        out.insert(0, from_slammer(slammer.load(path)))
    return out


def pooled(outcomes: list[Outcome]) -> dict[str, Any]:
    """One detector's figures over several cases: incidents detected of all,
    the median of every detection delay, false events per day of scored time
    (the sum over cases, each case one collector)."""
    incidents = sum(o.scores.incidents for o in outcomes)
    detected = sum(o.scores.detected for o in outcomes)
    delays = [d for o in outcomes for d in o.scores.delays_min]
    days = sum(o.scores.days for o in outcomes)
    false_events = sum(o.scores.false_events for o in outcomes)
    return {
        "incidents": incidents,
        "detected": detected,
        "event_recall": round(detected / incidents, 4) if incidents else 0.0,
        "median_delay_min": round(float(np.median(delays)), 4) if delays else None,
        "max_delay_min": max(delays) if delays else None,
        "false_events": false_events,
        "days": round(days, 4),
        "false_events_per_day": round(false_events / days, 3) if days else 0.0,
        "seconds": round(sum(o.seconds for o in outcomes), 1),
    }
