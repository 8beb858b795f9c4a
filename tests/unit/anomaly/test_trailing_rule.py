"""One trailing rule for every step: the evaluation's settings are the live job's."""

import numpy as np
import pandas as pd
import pytest

from bgp_orchestrator.anomaly import incidents, rule_choice
from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.multivariate import live_params
from bgp_orchestrator.anomaly.trailing_rule import RULE, TrailingRule
from bgp_orchestrator.errors import InvalidInput


def test_span_and_persistence_follow_the_step() -> None:
    rule = TrailingRule(persist=3, confirm_s=300, span_s=30)
    ten, minute, hour = rule.params(10), rule.params(60), rule.params(3600)
    assert (ten.span, ten.persist) == (3, 3)  # 30 s summed; 3 steps confirm in 30 s
    assert (minute.span, minute.persist) == (1, 3)
    assert (hour.span, hour.persist) == (1, 1)  # an hour is its own confirmation
    assert rule.params(120).persist == 3 and rule.params(200).persist == 2
    assert TrailingRule(span_s=0).params(10).span == 1
    assert {ten.window, ten.k, ten.min_sigma} == {hour.window, hour.k, hour.min_sigma}


def test_the_live_job_runs_the_rule_the_real_sets_are_scored_with() -> None:
    for resolution in (60, 300, 3600):
        assert live_params(FitParams(resolution_s=resolution)) == RULE.params(resolution)


def test_bad_rules_and_steps_are_refused() -> None:
    with pytest.raises(InvalidInput):
        TrailingRule(k=0)
    with pytest.raises(InvalidInput):
        TrailingRule(confirm_s=-1)
    with pytest.raises(InvalidInput):
        RULE.params(0)


def _case(name: str, volumes: np.ndarray, labels: np.ndarray, step_s: int = 60) -> incidents.Case:
    return incidents.Case(
        name=name,
        step_s=step_s,
        index=pd.date_range("2026-01-01", periods=len(volumes), freq=f"{step_s}s", tz="UTC"),
        columns={"updates": volumes.astype(np.float64)},
        ratios={},
        labels=labels,
        band=FitParams(season_length=6, resolution_s=step_s),
        trailing=RULE.params(step_s),
    )


def _burst(n: int, at: int, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.poisson(100, n).astype(np.float64)
    labels = np.zeros(n, dtype=bool)
    values[at : at + 5] += size
    labels[at : at + 5] = True
    return values, labels


def test_the_objective_puts_the_false_event_goal_before_recall() -> None:
    quiet = _case("quiet", *_burst(200, 150, 5000, 1))
    rules = (TrailingRule(k=2.0, min_sigma=0.05, persist=1), TrailingRule(k=5.0))
    scored = rule_choice.table([quiet], rules)
    loose, strict = (scored[r]["quiet"] for r in rules)
    assert loose.false_events > strict.false_events == 0
    assert rule_choice.choose(scored, ["quiet"]) == rules[1]
    # of equals, the first listed
    assert rule_choice.choose({r: scored[rules[1]] for r in rules}, ["quiet"]) == rules[0]


def test_leave_one_out_scores_each_case_with_a_rule_chosen_on_the_others() -> None:
    cases = [_case(f"c{i}", *_burst(200, 120 + i, 3000, i)) for i in range(3)]
    scored = rule_choice.table(cases, (TrailingRule(k=4.0), TrailingRule(k=6.0)))
    held = rule_choice.leave_one_out(scored)
    assert [h.case for h in held] == ["c0", "c1", "c2"]
    for h in held:
        others = [c.name for c in cases if c.name != h.case]
        assert h.rule == rule_choice.choose(scored, others)
        assert h.scores == scored[h.rule][h.case]


def test_coarsening_sums_volumes_and_keeps_labels() -> None:
    values, labels = _burst(120, 70, 1000, 3)
    case = _case("minutes", values, labels)
    hourly = incidents.coarsened(case, 60, FitParams(season_length=2, resolution_s=3600))
    assert hourly.step_s == 3600 and len(hourly.labels) == 2
    assert hourly.columns["updates"].tolist() == [values[:60].sum(), values[60:].sum()]
    assert hourly.labels.tolist() == [False, True]
    assert hourly.trailing == RULE.params(3600)
