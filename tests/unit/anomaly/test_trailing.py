"""The multivariate trailing detector: bursts across features, mix shifts, and
long incidents that must not become the baseline."""

import numpy as np
import pytest

from bgp_orchestrator.anomaly.trailing import (
    TrailingParams,
    mix_ratio,
    severity_of_count,
    trailing_scores,
)
from bgp_orchestrator.errors import InvalidInput


def _noise(n: int, level: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(level, n).astype(float)


def test_a_burst_is_flagged_and_judged_only_from_the_past() -> None:
    a = _noise(100, 50, 1)
    w = _noise(100, 5, 2)
    a[60:63] = 5000
    result = trailing_scores({"a": a, "w": w}, TrailingParams(window=30, min_history=10))
    assert result.flags[60:63].all()
    assert not result.flags[:60].any()
    assert (result.scores[:10] == 0).all()  # no verdict before min_history


def test_a_long_incident_does_not_become_the_normal() -> None:
    a = _noise(200, 50, 3)
    a[80:180] = 2000  # longer than the 30-step window
    result = trailing_scores({"a": a}, TrailingParams(window=30, min_history=10))
    assert result.flags[80:180].all()
    assert not result.flags[185:].any()


def test_a_shift_in_the_mix_is_seen_by_the_ratio_when_the_volume_is_usual() -> None:
    a = _noise(120, 100, 4)
    w = _noise(120, 10, 5)
    a[90:95], w[90:95] = 10, 100  # same total, mostly withdrawals
    params = TrailingParams(window=30, min_history=10, k=4.0)
    total = {"updates": a + w}
    assert not trailing_scores(total, params).flags[90:95].any()
    mixed = trailing_scores(total, params, ratios={"share": mix_ratio(w, a)})
    assert mixed.flags[90:95].all()


def test_min_series_counts_features_moving_together() -> None:
    peers = {f"p{i}": _noise(80, 20, 10 + i) for i in range(4)}
    peers["p0"][50] = 3000
    for name in ("p1", "p2", "p3"):
        peers[name][60] = 3000
    result = trailing_scores(peers, TrailingParams(window=30, min_history=10, min_series=3))
    assert result.moved[50] == 1 and not result.flags[50]
    assert result.moved[60] == 3 and result.flags[60]


def test_span_sums_a_bursty_cadence() -> None:
    a = np.tile([90.0, 0.0, 0.0], 40)  # a dump every third step
    a[90] = 3000
    plain = trailing_scores({"a": a}, TrailingParams(window=30, min_history=10))
    summed = trailing_scores({"a": a}, TrailingParams(window=30, min_history=10, span=3))
    # step by step, the zeros and dumps spread the baseline so wide the burst hides in it
    assert not plain.flags[90]
    assert summed.flags[90] and not summed.flags[:90].any()


def test_persist_reports_only_what_lasts() -> None:
    a = _noise(100, 50, 6)
    a[40] = 5000  # a blip
    a[70:75] = 5000  # an event
    result = trailing_scores({"a": a}, TrailingParams(window=30, min_history=10, persist=2))
    assert not result.flags[40] and not result.flags[70]
    assert result.flags[71:75].all()


def test_mix_ratio_is_damped_at_low_counts() -> None:
    share = mix_ratio(np.array([1.0, 300.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert share[0] < 0.05 and share[1] > 0.9 and share[2] == 0.0


def test_severity_grows_with_the_share_of_series_moving() -> None:
    assert severity_of_count(1, 40) == "low"
    assert severity_of_count(1, 1) == "low"
    assert severity_of_count(10, 40) == "medium"
    assert severity_of_count(20, 40) == "high"
    assert severity_of_count(30, 40) == "critical"
    assert severity_of_count(0, 0) == "low"


def test_bad_parameters_name_their_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        TrailingParams(window=10, min_history=20)
    assert caught.value.field == "min_history"
    with pytest.raises(InvalidInput):
        TrailingParams(span=0)
    with pytest.raises(ValueError, match="different lengths"):
        trailing_scores({"a": np.ones(5), "b": np.ones(6)}, TrailingParams(window=4, min_history=2))


def test_hold_keeps_a_decaying_incident_out_of_the_baseline() -> None:
    a = _noise(300, 50, 7)
    tail = 50 * 40 ** (1 - np.arange(120) / 120)  # 40x the usual, back to it in 120 steps
    a[100:220] = tail
    plain = TrailingParams(window=30, min_history=10, k=5.0, min_sigma=0.5)
    held = TrailingParams(window=30, min_history=10, k=5.0, min_sigma=0.5, hold_k=2.0)
    without = trailing_scores({"a": a}, plain).flags
    with_hold = trailing_scores({"a": a}, held).flags
    # without the hold the tail is let into the baseline as it dips under k
    assert without[100] and with_hold[100]
    assert with_hold[100:220].sum() > 2 * without[100:220].sum()
    assert not with_hold[:100].any() and not with_hold[240:].any()


def test_hold_alone_raises_no_alarm() -> None:
    a = _noise(200, 50, 8)
    a[60:70] = 120  # above the usual, under k: no incident starts
    plain = TrailingParams(window=30, min_history=10, k=5.0, min_sigma=0.5)
    held = TrailingParams(window=30, min_history=10, k=5.0, min_sigma=0.5, hold_k=1.0)
    assert not trailing_scores({"a": a}, plain).flags.any()
    assert not trailing_scores({"a": a}, held).flags.any()
    with pytest.raises(InvalidInput) as caught:
        TrailingParams(k=3.0, hold_k=4.0)
    assert caught.value.field == "hold_k"
