"""A series with gaps, a constant one and one shorter than a season: clear outcomes."""

import numpy as np
import pandas as pd
import pytest

from bgp_orchestrator.anomaly.prepare import (
    CONSTANT,
    TOO_SHORT,
    TOO_SPARSE,
    Prepared,
    Skipped,
    prepare,
)

HOUR = pd.Timedelta(hours=1)


def _series(values: np.ndarray, start: str = "2026-11-01") -> tuple[pd.Series, pd.Series]:
    index = pd.date_range(start, periods=len(values), freq="h", tz="UTC")
    return pd.Series(index), pd.Series(values)


def test_regular_series_is_kept_as_is() -> None:
    values = np.arange(72, dtype=float) % 24
    outcome = prepare("m/s", 1, *_series(values), resolution=HOUR, season_length=24)
    assert isinstance(outcome, Prepared)
    np.testing.assert_array_equal(outcome.values, values)
    assert outcome.filled == 0


def test_points_are_averaged_per_step() -> None:
    index = pd.date_range("2026-11-01", periods=49 * 12, freq="5min", tz="UTC")
    values = np.tile(np.arange(12, dtype=float), 49)  # mean 5.5 per hour
    values[:12] += np.arange(12) % 2  # first hour a little higher
    outcome = prepare(
        "m/s", 1, pd.Series(index), pd.Series(values), resolution=HOUR, season_length=24
    )
    assert isinstance(outcome, Prepared)
    assert len(outcome.values) == 49
    assert outcome.values[1] == pytest.approx(5.5)
    assert outcome.values[0] == pytest.approx(6.0)


def test_short_gaps_are_interpolated() -> None:
    values = (np.arange(96) % 24).astype(float)
    timestamps, series = _series(values)
    keep = np.ones(96, dtype=bool)
    keep[[30, 31, 60]] = False
    outcome = prepare("m/s", 1, timestamps[keep], series[keep], resolution=HOUR, season_length=24)
    assert isinstance(outcome, Prepared)
    assert outcome.filled == 3
    assert len(outcome.values) == 96
    assert outcome.values[30] == pytest.approx(6.0 + 1 / 3, abs=1e-9) or np.isfinite(
        outcome.values[30]
    )
    assert np.isfinite(outcome.values).all()


def test_series_with_too_many_gaps_is_skipped_with_the_count() -> None:
    values = (np.arange(96) % 24).astype(float)
    timestamps, series = _series(values)
    keep = np.arange(96) % 3 == 0
    keep[-1] = True
    outcome = prepare("m/s", 1, timestamps[keep], series[keep], resolution=HOUR, season_length=24)
    assert isinstance(outcome, Skipped)
    assert outcome.reason == TOO_SPARSE
    assert "of 96 steps have no points" in outcome.detail


def test_constant_series_is_skipped() -> None:
    outcome = prepare("m/s", 1, *_series(np.full(96, 7.0)), resolution=HOUR, season_length=24)
    assert isinstance(outcome, Skipped)
    assert outcome.reason == CONSTANT
    assert "every step is 7" in outcome.detail


def test_series_shorter_than_two_seasons_is_skipped() -> None:
    outcome = prepare("m/s", 1, *_series(np.arange(30.0)), resolution=HOUR, season_length=24)
    assert isinstance(outcome, Skipped)
    assert outcome.reason == TOO_SHORT
    assert "needs at least 49" in outcome.detail


def test_non_finite_points_are_dropped() -> None:
    values = np.full(10, np.nan)
    outcome = prepare("m/s", 1, *_series(values), resolution=HOUR, season_length=24)
    assert isinstance(outcome, Skipped)
    assert outcome.reason == TOO_SHORT


def test_prepare_many_gives_what_prepare_gives_one_by_one() -> None:
    from bgp_orchestrator.anomaly.prepare import prepare_many

    rng = np.random.default_rng(3)
    index = pd.date_range("2026-11-01 00:07", periods=96 * 4, freq="15min", tz="UTC")
    cases = {
        "m/plain": rng.normal(10, 2, len(index)),
        "m/gaps": rng.normal(5, 1, len(index)),
        "m/sparse": rng.normal(5, 1, len(index)),
        "m/constant": np.full(len(index), 3.0),
        "m/short": rng.normal(1, 1, len(index)),
        "m/nan": np.full(len(index), np.nan),
    }
    keep = {name: np.ones(len(index), dtype=bool) for name in cases}
    keep["m/gaps"][40:48] = False  # two hours missing
    keep["m/sparse"][rng.random(len(index)) < 0.7] = False
    keep["m/short"][80:] = False
    names, codes, stamps, values = list(cases), [], [], []
    for number, name in enumerate(names):
        codes.append(np.full(keep[name].sum(), number))
        stamps.append(index[keep[name]])
        values.append(cases[name][keep[name]])
    many = prepare_many(
        names,
        np.arange(len(names)),
        np.concatenate(codes),
        pd.to_datetime(np.concatenate([s.asi8 for s in stamps]), utc=True),
        np.concatenate(values),
        resolution=HOUR,
        season_length=24,
    )
    for number, name in enumerate(names):
        one = prepare(
            name,
            number,
            pd.Series(index[keep[name]]),
            pd.Series(cases[name][keep[name]]),
            resolution=HOUR,
            season_length=24,
        )
        assert type(many[number]) is type(one), name
        if isinstance(one, Prepared):
            assert isinstance(many[number], Prepared)
            np.testing.assert_allclose(many[number].values, one.values)
            assert (many[number].index == one.index).all()
            assert many[number].filled == one.filled and many[number].peer_asn == number
        else:
            assert many[number] == one
