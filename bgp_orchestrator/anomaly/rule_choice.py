"""Choosing the trailing detector's rule on the real labelled sets, and how well
the choice holds on a set it was not chosen on.

Every rule of :data:`GRID` is scored on every case (event by event, from the
case's first step). A rule is judged on the goals of issue 14, in this order:

1. how many of the cases (one collector each) have more than
   :data:`FALSE_PER_DAY` false events per day of scored time — fewer is better;
2. how many incidents are detected within :data:`DELAY_MIN` minutes — more;
3. the median detection delay, then the false events, then the longest delay —
   less;
4. point-wise F1 over every scored step of the cases together — more: what
   tells apart rules that raise the same alarms but hold a long incident for
   more or less of its length (``hold_k``); a tie left after that goes to the
   rule listed first.

:func:`choose` applies it to a list of cases; :func:`leave_one_out` chooses on
every case but one and scores the one left out, so each case's figure comes
from a rule that never saw it: the estimate of how the rule does on an
incident set it was not chosen on. Nothing here is chosen per set.

The sets are few and unlike each other (three days of Slammer minutes; 5-15
minute dumps at 10-s steps, on which one false event reads as hundreds per
day), and 8 of their 12 incidents are state-change bursts of peers that send
no update (see :mod:`bgp_orchestrator.anomaly.mrtsets`): a rule that flags one
of those does so by coincidence, and the ranking counts it all the same.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bgp_orchestrator.anomaly.events import EventScores, event_scores
from bgp_orchestrator.anomaly.incidents import Case, trailing_flags
from bgp_orchestrator.anomaly.trailing_rule import TrailingRule

DELAY_MIN = 15.0
FALSE_PER_DAY = 1.0

#: The rules tried: baseline length, k, spread floor, persistence, span, hold.
GRID: tuple[TrailingRule, ...] = tuple(
    TrailingRule(window=w, k=k, min_sigma=floor, persist=p, span_s=span, hold_k=hold)
    for w, k, floor, p, span, hold in itertools.product(
        (30, 60), (4.0, 5.0, 6.0), (0.5, 0.75), (1, 2, 3), (0, 30), (0.0, 2.0, 3.0)
    )
)

Table = dict[TrailingRule, dict[str, EventScores]]


def score_rule(
    rule: TrailingRule, cases: list[Case], *, peers_together: int = 0
) -> dict[str, EventScores]:
    """``rule`` on every case, by case name."""
    out = {}
    for case in cases:
        flags = trailing_flags(case, rule.params(case.step_s), peers_together=peers_together)
        out[case.name] = event_scores(flags, case.labels, step_s=case.step_s, first=case.first)
    return out


def table(cases: list[Case], rules: tuple[TrailingRule, ...] = GRID) -> Table:
    return {rule: score_rule(rule, cases) for rule in rules}


def objective(scores: dict[str, EventScores], names: list[str]) -> tuple[float, ...]:
    """The ranking key of one rule over the cases ``names`` (smaller is better)."""
    over = sum(1 for n in names if scores[n].false_events_per_day > FALSE_PER_DAY)
    delays = [d for n in names for d in scores[n].delays_min]
    within = sum(1 for d in delays if d <= DELAY_MIN)
    false_events = sum(scores[n].false_events for n in names)
    median = float(np.median(delays)) if delays else float("inf")
    longest = max(delays) if delays else float("inf")
    tp = sum(scores[n].points.true_positives for n in names)
    fp = sum(scores[n].points.false_positives for n in names)
    fn = sum(scores[n].points.false_negatives for n in names)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return (over, -within, median, false_events, longest, -f1)


def choose(scored: Table, names: list[str]) -> TrailingRule:
    """The best rule over ``names`` (the first listed of equals)."""
    return min(scored, key=lambda rule: objective(scored[rule], names))


@dataclass(frozen=True)
class HeldOut:
    case: str
    rule: TrailingRule  # chosen on every other case
    scores: EventScores  # of that rule on this case


def leave_one_out(scored: Table) -> list[HeldOut]:
    names = list(next(iter(scored.values())))
    out = []
    for name in names:
        rule = choose(scored, [n for n in names if n != name])
        out.append(HeldOut(name, rule, scored[rule][name]))
    return out
