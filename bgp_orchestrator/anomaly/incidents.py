"""Detectors scored on real labelled incidents, event by event, time-ordered.

A :class:`Case` is one labelled series set in a common shape (the Slammer
minutes, or a collector's 10-s steps from an MRT dump, see
:mod:`bgp_orchestrator.anomaly.mrtsets`). Each detector judges a step only from
the steps before it:

- ``trailing`` (:mod:`bgp_orchestrator.anomaly.trailing`): the collector's
  volumes and withdrawal share together against a cleaned trailing baseline,
  with the settings :data:`bgp_orchestrator.anomaly.trailing_rule.RULE` gives
  for the case's step, the same rule the fitting job runs (a per-peer view of
  several peers out at once is measured by
  :mod:`bgp_orchestrator.anomaly.rule_choice` but not part of it: it changed
  nothing on the real sets, and the job's session buckets do not hold a
  collector's peers together);
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
from bgp_orchestrator.anomaly.trailing_rule import RULE, TrailingRule

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


def from_slammer(data: Labelled, band: FitParams | None = None, rule: TrailingRule = RULE) -> Case:
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
        trailing=rule.params(60),
        band_step=60,
        prophet_step=240,
    )


def from_realset(data: RealSet, band: FitParams | None = None, rule: TrailingRule = RULE) -> Case:
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
        trailing=rule.params(data.step_s),
        peers=dict(data.peers),
        state_peers=len(data.state_peers),
        silent_state_peers=len(data.silent_state_peers),
    )


def trailing_flags(
    case: Case, params: TrailingParams | None = None, *, peers_together: int = 0
) -> np.ndarray:
    """The trailing detector's reported steps on ``case`` (its own settings unless
    ``params``). ``peers_together`` > 0 adds the per-peer view: a step is also
    flagged when that many of the collector's peers are out of their own
    baselines at once (measured only; not part of the rule)."""
    params = params or case.trailing
    flags = trailing_scores(case.columns, params, ratios=case.ratios).flags
    if peers_together and len(case.peers) >= peers_together:
        together = replace(params, min_series=peers_together)
        flags = flags | trailing_scores(case.peers, together).flags
    return np.asarray(flags, dtype=bool)


def coarsened(case: Case, factor: int, band: FitParams, rule: TrailingRule = RULE) -> Case:
    """``case`` at steps ``factor`` times longer: volumes summed, mix ratios
    averaged, a step labelled when any of its steps was. What lets the detector
    be measured at the fitting job's hourly resolution on data recorded finer."""
    steps = len(case.labels) // factor
    if steps < 2:
        raise ValueError(f"{case.name}: too short to coarsen by {factor}")

    def fold(values: np.ndarray) -> np.ndarray:
        return np.asarray(values[: steps * factor], np.float64).reshape(steps, factor)

    step_s = case.step_s * factor
    return Case(
        name=f"{case.name}@{step_s}s",
        step_s=step_s,
        index=case.index[: steps * factor : factor],
        columns={name: fold(v).sum(axis=1) for name, v in case.columns.items()},
        ratios={name: fold(v).mean(axis=1) for name, v in case.ratios.items()},
        labels=np.asarray(fold(case.labels).any(axis=1), dtype=bool),
        band=band,
        trailing=rule.params(step_s),
    )


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
