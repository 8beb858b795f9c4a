"""Band, merging of consecutive points, severities and the engines."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from bgp_orchestrator.anomaly.band import Band, band_from_expected, robust_sigma
from bgp_orchestrator.anomaly.detect import find_anomalies, severity_of
from bgp_orchestrator.anomaly.engines import FitParams, expected_values
from bgp_orchestrator.anomaly.evaluation import point_scores
from bgp_orchestrator.anomaly.fitting import fit_frame
from bgp_orchestrator.anomaly.prepare import Prepared
from bgp_orchestrator.anomaly.synthetic import generate
from bgp_orchestrator.anomaly.tuning import score
from bgp_orchestrator.errors import InvalidInput

INDEX = pd.date_range("2026-11-01", periods=10, freq="h", tz="UTC")


def _prepared(values: list[float]) -> Prepared:
    return Prepared(
        "bgpo_session_prefixes/rrc00|192.0.2.1", 64500, INDEX[: len(values)], np.array(values), 0
    )


def test_consecutive_flagged_points_merge_into_one_anomaly() -> None:
    values = [10.0, 10, 30, 40, 10, 10, 2, 10, 10, 10]
    band = Band(expected=np.full(10, 10.0), sigma=1.0, k=3.0)
    found = find_anomalies(_prepared(values), band)
    assert [(a.start_at, a.end_at, a.points) for a in found] == [
        (INDEX[2], INDEX[3], 2),
        (INDEX[6], INDEX[6], 1),
    ]
    spike, dip = found
    assert spike.peak_at == INDEX[3] and spike.score == 30.0 and spike.actual == 40.0
    assert spike.direction == "above" and spike.severity == "critical"
    assert dip.direction == "below" and dip.score == 8.0 and dip.severity == "medium"
    assert (spike.lower, spike.upper) == (7.0, 13.0)
    assert spike.metric == "bgpo_session_prefixes" and spike.session == "rrc00|192.0.2.1"
    window = spike.window
    assert len(window["timestamps"]) == 10  # the whole (short) series is the context
    assert window["actual"][3] == 40.0 and window["upper"][3] == 13.0


def test_since_keeps_only_anomalies_ending_after_it() -> None:
    values = [10.0, 30, 10, 10, 10, 10, 30, 10, 10, 10]
    band = Band(expected=np.full(10, 10.0), sigma=1.0, k=3.0)
    found = find_anomalies(_prepared(values), band, since=(INDEX[5]).to_pydatetime())
    assert [a.start_at for a in found] == [INDEX[6]]


def test_points_without_expected_value_are_never_flagged() -> None:
    expected = np.array([np.nan, np.nan, 10, 10, 10, 10, 10, 10, 10, 10])
    band = Band(expected=expected, sigma=1.0, k=3.0)
    assert not find_anomalies(_prepared([500.0, 0] + [10.0] * 8), band)
    window = find_anomalies(_prepared([500.0, 0, 99] + [10.0] * 7), band)[0].window
    assert window["expected"][0] is None


def test_severity_grows_with_the_score() -> None:
    assert [severity_of(s) for s in (3.1, 5.0, 7.9, 11, 12.5, 100)] == [
        "low", "low", "medium", "high", "critical", "critical",
    ]  # fmt: skip


def test_robust_sigma_ignores_the_anomalies_and_is_never_zero() -> None:
    residuals = np.concatenate([np.random.default_rng(0).normal(0, 2, 500), [400.0] * 10])
    assert robust_sigma(residuals, residuals) == pytest.approx(2.0, rel=0.15)
    flat = np.zeros(100)
    assert robust_sigma(flat, flat) > 0


def test_fit_params_refuse_bad_values_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        FitParams(engine="arima")
    assert caught.value.field == "engine"
    with pytest.raises(InvalidInput) as caught:
        FitParams(k=0)
    assert caught.value.field == "k"


@pytest.mark.parametrize("model", ["seasonal_es", "seasonal_es_optimized"])
def test_statsforecast_finds_the_injected_anomalies(model: str) -> None:
    data = generate(60, seed=3)
    scores = score(data, FitParams(model=model))
    assert scores.recall > 0.9
    assert scores.precision > 0.7


def test_an_undisturbed_seasonal_series_has_almost_no_anomalies() -> None:
    t = np.arange(14 * 24)
    rng = np.random.default_rng(4)
    values = 100 + 30 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, t.size)
    index = pd.date_range("2026-11-01", periods=t.size, freq="h", tz="UTC")
    item = Prepared("bgpo_session_update_rate/x|1", 1, index, values, 0)
    expected = expected_values([item], FitParams())[item.series_id]
    assert np.isnan(expected[:24]).all()  # the first season has no fitted value
    band = band_from_expected(values, expected, 3.0)
    assert band.flags(values).sum() <= 5  # ~0.3 % of 312 points by chance
    np.testing.assert_allclose(expected[24 * 7 :], values[24 * 7 :], atol=5 * 2.5)


def test_prophet_engine_fits_and_flags_a_dropout() -> None:
    data = generate(2, days=6, anomalies_per_series=0, seed=5)
    values = data.values.copy()
    values[0, 100:104] = 0.0
    labels = np.zeros_like(data.labels)
    labels[0, 100:104] = True
    data = type(data)(data.index, values, labels, data.sessions, data.peer_asns)
    scores = score(data, FitParams(engine="prophet"))
    assert scores.true_positives == 4
    assert scores.false_positives <= 3


def test_fit_frame_reports_fitted_skipped_and_anomalies() -> None:
    data = generate(5, days=4, anomalies_per_series=0, seed=6)
    frame = data.long_frame("bgpo_session_update_rate")
    spike_at = data.index[60]
    frame.loc[
        (frame["session"] == data.sessions[0]) & (frame["timestamp"] == spike_at), "value"
    ] *= 10
    short = frame[frame["session"] == data.sessions[1]].head(20).assign(session="short|1")
    constant = frame[frame["session"] == data.sessions[2]].assign(session="flat|1", value=5.0)
    result = fit_frame(pd.concat([frame, short, constant]), FitParams(), band_points=24)
    assert result.fitted == 5
    assert result.skip_counts == {"too-short": 1, "constant": 1}
    spikes = [a for a in result.anomalies if a.session == data.sessions[0]]
    assert any(a.start_at <= spike_at.to_pydatetime() <= a.end_at for a in spikes)
    assert len(result.bands) == 5 * 3  # one series per band metric and fitted series
    assert sum(len(p.values) for p in result.bands) == 5 * 3 * 24
    assert {p.metric for p in result.bands} == {
        "bgpo_anomaly_expected", "bgpo_anomaly_lower", "bgpo_anomaly_upper",
    }  # fmt: skip
    assert all(p.labels == (("series_metric", "bgpo_session_update_rate"),) for p in result.bands)
    later = fit_frame(frame, FitParams(), since=(spike_at + timedelta(hours=1)).to_pydatetime())
    assert not [a for a in later.anomalies if a.start_at <= spike_at.to_pydatetime() <= a.end_at]


def test_point_scores() -> None:
    flags = np.array([1, 1, 0, 0, 1], dtype=bool)
    labels = np.array([1, 0, 1, 0, 1], dtype=bool)
    s = point_scores(flags, labels)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 1, 1)
    assert s.precision == pytest.approx(2 / 3, abs=1e-4) and s.f1 == pytest.approx(2 / 3, abs=1e-4)
    assert point_scores(np.zeros(3, bool), np.ones(3, bool)).f1 == 0.0


def test_a_long_incident_stays_anomalous_when_the_fit_is_cleaned() -> None:
    from dataclasses import replace

    data = generate(1, days=14, anomalies_per_series=0, seed=8)
    frame = data.long_frame("bgpo_session_update_rate")
    shift_from = data.index[14 * 24 - 32]
    frame.loc[frame["timestamp"] >= shift_from, "value"] *= 4  # the last 32 hours
    hours = lambda result: sum(a.points for a in result.anomalies)  # noqa: E731
    quick = FitParams(alpha=0.5)  # a model that adapts fast learns an incident fast
    learnt = fit_frame(frame, replace(quick, clean=False))
    cleaned = fit_frame(frame, quick)
    assert hours(cleaned) > hours(learnt)  # the second day looked normal to it


def test_many_sessions_moving_at_once_raise_the_severity() -> None:
    data = generate(12, days=4, anomalies_per_series=0, seed=9)
    frame = data.long_frame("bgpo_session_update_rate")
    at = data.index[70]
    alone = frame.copy()
    alone.loc[(alone["session"] == data.sessions[0]) & (alone["timestamp"] == at), "value"] *= 1.25
    together = frame.copy()
    together.loc[together["timestamp"] == at, "value"] *= 1.25
    one = [a for a in fit_frame(alone, FitParams()).anomalies if a.peak_at == at]
    many = [a for a in fit_frame(together, FitParams()).anomalies if a.peak_at == at]
    assert one and len(many) >= 6  # half of the 12 sessions or more
    assert one[0].severity in ("low", "medium")  # alone: its score's severity
    assert {a.severity for a in many} <= {"high", "critical"}
