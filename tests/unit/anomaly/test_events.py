"""Event-level scores: overlap, delay, false events per day and their edge cases."""

import numpy as np
import pytest

from bgp_orchestrator.anomaly.events import event_scores, runs


def _b(text: str) -> np.ndarray:
    return np.array([c == "x" for c in text])


def test_runs_are_half_open_pairs() -> None:
    assert runs(_b("..xx.x")) == [(2, 4), (5, 6)]
    assert runs(_b("....")) == []
    assert runs(_b("xxx")) == [(0, 3)]


def test_an_overlapping_anomaly_detects_the_incident_with_its_delay() -> None:
    labels = _b("..xxxxx...")
    flags = _b("....xx....")
    scores = event_scores(flags, labels, step_s=60)
    assert (scores.incidents, scores.detected, scores.event_recall) == (1, 1, 1.0)
    assert scores.delays_min == (2.0,)  # first flag two minutes after the start
    assert scores.median_delay_min == 2.0
    assert scores.false_events == 0


def test_an_alarm_raised_before_the_incident_counts_with_no_delay() -> None:
    scores = event_scores(_b(".xxx...."), _b("..xxx..."), step_s=10)
    assert scores.delays_min == (0.0,)
    assert scores.false_events == 0  # the run overlaps the incident: not false


def test_false_events_are_runs_outside_every_incident_per_day() -> None:
    labels = _b("....xx" + "." * 1434)  # one day of minutes
    flags = _b("x.x.xx..xx" + "." * 1430)
    scores = event_scores(flags, labels, step_s=60)
    assert scores.false_events == 3  # "x", "x", "xx": one merged run each
    assert scores.days == pytest.approx(1.0)
    assert scores.false_events_per_day == pytest.approx(3.0)


def test_a_missed_incident_and_the_median_of_several_delays() -> None:
    labels = _b("xx...xxx...xxxx.")
    flags = _b("........x..x..x.")
    scores = event_scores(flags, labels, step_s=60)
    assert (scores.incidents, scores.detected) == (3, 1)
    assert scores.event_recall == pytest.approx(0.3333)
    labels = _b("xx...xxx...xxxx.")
    flags = _b(".x.....x...x....")
    scores = event_scores(flags, labels, step_s=60)
    assert scores.delays_min == (1.0, 2.0, 0.0)
    assert scores.median_delay_min == 1.0


def test_nothing_flagged_and_no_incident() -> None:
    scores = event_scores(_b("...."), _b("...."), step_s=60)
    assert (scores.incidents, scores.event_recall, scores.median_delay_min) == (0, 0.0, None)
    assert scores.false_events == 0 and scores.points.f1 == 0.0


def test_only_steps_from_first_are_scored() -> None:
    labels = _b("xx....xx..")
    flags = _b("x.x.......")
    scores = event_scores(flags, labels, step_s=60, first=2)
    # the incident at 0-1 ended before the first scored step; the flag at 2 is false
    assert (scores.incidents, scores.detected, scores.false_events) == (1, 0, 1)
    assert scores.days == pytest.approx(8 / 1440, rel=1e-3)


def test_point_scores_come_beside_the_events() -> None:
    scores = event_scores(_b("..xx.."), _b("..xxx."), step_s=60)
    assert scores.points.precision == 1.0 and scores.points.recall == pytest.approx(0.6667)
    assert scores.as_dict()["points"]["true_positives"] == 2


def test_mismatched_shapes_and_bad_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        event_scores(_b("..."), _b("...."), step_s=60)
    with pytest.raises(ValueError, match="step_s"):
        event_scores(_b("..."), _b("..."), step_s=0)
