"""The trailing detector in the fitting job: batched over sessions, a session's
metrics together, its anomalies beside the bands'."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.fitting import fit_frame
from bgp_orchestrator.anomaly.multivariate import live_params
from bgp_orchestrator.anomaly.series import TRAILING_METRIC
from bgp_orchestrator.anomaly.trailing import (
    TrailingParams,
    scaled,
    trailing_many,
    trailing_scores,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = 14 * 24
UPDATES = "bgpo_session_update_rate"
WITHDRAWALS = "bgpo_session_withdrawal_rate"


def test_batched_scores_equal_each_series_alone() -> None:
    rng = np.random.default_rng(3)
    volumes = rng.poisson(40, (5, 2, 150)).astype(float)
    volumes[1, 0, 70:110] = 3000  # a long incident in one series only
    volumes[3, 1, 50] = 900
    ratios = rng.uniform(0.1, 0.3, (5, 1, 150))
    params = TrailingParams(window=30, min_history=10, k=4.0, persist=2, span=2)
    batch = trailing_many(scaled(volumes, ratios, params.span), params)
    for number in range(5):
        alone = trailing_scores(
            {"a": volumes[number, 0], "w": volumes[number, 1]},
            params,
            ratios={"share": ratios[number, 0]},
        )
        assert np.allclose(batch.z[number].T, alone.z)
        assert (batch.flags[number] == alone.flags).all()
    assert batch.flags[1, 72:110].all()  # cleaned: the incident stays out of the baseline


def _frame(sessions: int, burst: tuple[int, int] | None) -> pd.DataFrame:
    """Updates with a daily rhythm and withdrawals for each session; session 0 has
    a withdrawal storm of ``burst`` hours (volumes and mix both move)."""
    rng = np.random.default_rng(5)
    rows = []
    stamps = pd.date_range(START, periods=HOURS, freq="h")
    for number in range(sessions):
        session = f"rrc00|192.0.2.{number}"
        rhythm = 200 + 60 * np.sin(2 * np.pi * np.arange(HOURS) / 24)
        withdrawals = rng.poisson(20, HOURS).astype(float)
        updates = rng.poisson(rhythm).astype(float) + withdrawals
        if number == 0 and burst is not None:
            withdrawals[burst[0] : burst[1]] += 4000
            updates[burst[0] : burst[1]] += 4000
        for metric, values in ((UPDATES, updates), (WITHDRAWALS, withdrawals)):
            rows.append(
                pd.DataFrame(
                    {
                        "metric": metric,
                        "session": session,
                        "peer_asn": 64500 + number,
                        "timestamp": stamps,
                        "value": values,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_the_fit_finds_a_storm_of_hours_as_one_trailing_anomaly() -> None:
    params = FitParams()
    storm = (HOURS - 40, HOURS - 30)  # ten hours, shorter than the 48-h baseline
    result = fit_frame(_frame(3, storm), params, trailing=live_params(params))
    assert result.fitted == 6 and result.trailing_sessions == 3
    found = [a for a in result.trailing if a.session == "rrc00|192.0.2.0"]
    assert len(found) == 1
    storm_anomaly = found[0]
    assert storm_anomaly.metric == TRAILING_METRIC
    assert storm_anomaly.start_at == START + timedelta(hours=storm[0])
    assert storm_anomaly.points == storm[1] - storm[0]  # not learnt as the normal
    assert storm_anomaly.direction == "above"
    assert storm_anomaly.actual > storm_anomaly.upper > storm_anomaly.expected
    window = storm_anomaly.window
    assert set(window["moved"]) >= {UPDATES, WITHDRAWALS}
    assert window["feature"] in window["moved"]
    assert len(window["timestamps"]) == len(window["actual"]) == len(window["upper"])
    assert storm_anomaly.severity in ("high", "critical")  # 3 of 3 features moved
    # the quiet sessions: at most a stray hour in two weeks
    assert len(result.trailing) - 1 <= 2
    # the bands of the same fit are kept apart from the trailing detector's
    assert all(a.metric in (UPDATES, WITHDRAWALS) for a in result.anomalies)


def test_since_and_no_trailing() -> None:
    params = FitParams()
    frame = _frame(2, (HOURS - 40, HOURS - 30))
    later = START + timedelta(hours=HOURS - 5)
    assert fit_frame(frame, params, since=later, trailing=live_params(params)).trailing == []
    assert fit_frame(frame, params).trailing == []


def test_bands_of_many_series_equal_each_alone() -> None:
    from bgp_orchestrator.anomaly.band import band_from_expected, bands_from_expected

    rng = np.random.default_rng(8)
    values = [rng.gamma(3, 10, 200) for _ in range(6)] + [np.full(200, 5.0), rng.normal(0, 1, 50)]
    expected = [np.concatenate([np.full(24, np.nan), v[24:] * 0.9]) for v in values]
    expected[2] = np.concatenate([np.full(30, np.nan), values[2][30:]])  # another warm-up
    expected[3] = np.full(200, np.nan)  # no fitted value at all
    many = bands_from_expected(values, expected, 3.0)
    for v, e, band in zip(values, expected, many, strict=True):
        alone = band_from_expected(v, e, 3.0)
        assert band.sigma == alone.sigma and band.k == 3.0 and band.expected is e
