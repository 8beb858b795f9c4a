"""The one feature implementation: window counts -> features and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.features import (
    BASE_COLUMNS,
    FEATURES,
    NO_FLAP_S,
    TIMESTAMP,
    derive_features,
    flap_labels,
)
from bgp_orchestrator.flaps.training import evaluate, time_split
from bgp_orchestrator.flaps.windows import WindowAggregator, window_counts
from bgp_orchestrator.simulation.sessions import SessionSimulation, simulate_windows

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
W = 300


def _base(session: str, rows: list[dict[str, float]]) -> pd.DataFrame:
    out = []
    for i, values in enumerate(rows):
        row = dict.fromkeys(BASE_COLUMNS, 0.0)
        row.update(values)
        row["session_id"] = session
        row["window_start"] = T0 + timedelta(seconds=W * i)
        out.append(row)
    return pd.DataFrame(out)


def test_rolling_features_stay_within_a_session() -> None:
    a = _base("a", [{"withdrawals": 1}] * 14)
    b = _base("b", [{"withdrawals": 100}] * 3)
    features = derive_features(pd.concat([b, a]), W)
    first_a = features[features.session_id == "a"].reset_index(drop=True)
    # 12 windows make an hour: the sum grows to 12 and stays there.
    assert first_a.withdrawals_1h.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 12]
    first_b = features[features.session_id == "b"].reset_index(drop=True)
    assert first_b.withdrawals_1h.tolist() == [100, 200, 300]
    assert list(features.columns[2:]) == list(FEATURES)
    assert features[list(FEATURES)].dtypes.unique().tolist() == [np.dtype("float32")]


def test_flap_timing_and_table_features() -> None:
    base = _base(
        "s",
        [
            {"prefix_count": 10, "announcements": 4, "path_len_sum": 12, "path_len_count": 4},
            {"prefix_count": 10, "announcements": 2, "path_changes": 1},
            {"prefix_count": 0, "downs": 1, "ups": 0},
            {"prefix_count": 10, "ups": 1},
        ],
    )
    f = derive_features(base, W)
    assert f.path_len_mean.tolist()[:2] == [3.0, 0.0]
    assert f.path_change_rate.tolist()[1] == 0.5
    assert f.time_since_last_flap_s.tolist() == [NO_FLAP_S, NO_FLAP_S, 0.0, 300.0]
    assert f.prefix_count_delta.tolist() == [0.0, 0.0, -10.0, 10.0]
    assert f.state_changes_1h.tolist() == [0.0, 0.0, 1.0, 2.0]
    assert f[TIMESTAMP].iloc[0] == pd.Timestamp(T0 + timedelta(seconds=W))
    assert f.hour_of_day.iloc[0] == 10.0


def test_labels_look_ahead_and_leave_the_unknown_unknown() -> None:
    base = _base(
        "s",
        [{"prefix_count": 10}] * 3
        + [{"prefix_count": 4, "withdrawals": 6}]  # 60 % withdrawn: a flap
        + [{"prefix_count": 4}] * 4,
    )
    labels = flap_labels(base, W, horizon_s=2 * W, withdraw_share=0.5).tolist()
    # window 1 and 2 see the mass withdrawal within two windows; 0 does not
    assert labels[:4] == [0.0, 1.0, 1.0, 0.0]
    assert labels[4:6] == [0.0, 0.0]
    # the last two windows' horizons run past the data: unknown, not negative
    assert np.isnan(labels[6]) and np.isnan(labels[7])


def test_an_incomplete_horizon_is_unknown_even_with_a_flap_in_it() -> None:
    # Keeping the positives of the last windows would bias the newest rows to flaps.
    base = _base("s", [{"prefix_count": 5}] * 4 + [{"prefix_count": 0, "downs": 1}])
    labels = flap_labels(base, W, horizon_s=3 * W, withdraw_share=0.5).tolist()
    assert labels[:2] == [0.0, 1.0]
    assert all(np.isnan(v) for v in labels[2:])


def test_window_aggregator_counts_a_session() -> None:
    def u(kind: Kind, t: float, prefix: str = "", path: tuple[int, ...] = ()) -> Update:
        return Update(kind, T0.timestamp() + t, "192.0.2.1", 64500, prefix, path, collector="c1")

    rows = window_counts(
        [
            u(Kind.ANNOUNCE, 1, "10.0.0.0/24", (64500, 1)),
            u(Kind.ANNOUNCE, 2, "10.0.1.0/24", (64500, 1)),
            u(Kind.ANNOUNCE, 3, "10.0.0.0/24", (64500, 2, 1)),  # a path change
            u(Kind.WITHDRAW, 4, "10.0.1.0/24"),
            u(Kind.PEER_DOWN, W + 1),
            u(Kind.PEER_UP, 3 * W + 1),
        ],
        W,
    )
    assert [r["session_id"] for r in rows] == ["c1|192.0.2.1"] * 4  # dense: quiet window 3 too
    first, second, quiet, last = rows
    assert (first["announcements"], first["withdrawals"], first["path_changes"]) == (3, 1, 1)
    assert first["distinct_prefixes"] == 2 and first["prefix_count"] == 1
    assert first["path_len_sum"] == 7 and first["path_len_count"] == 3
    assert second["downs"] == 1 and second["prefix_count"] == 0
    assert quiet["announcements"] == 0 and quiet["downs"] == 0
    assert last["ups"] == 1


def test_late_updates_are_counted_not_dropped() -> None:
    agg = WindowAggregator(W)
    agg.add(Update(Kind.ANNOUNCE, T0.timestamp() + W + 5, "p", 1, "10.0.0.0/8", (1,)))
    agg.add(Update(Kind.ANNOUNCE, T0.timestamp() + 5, "p", 1, "10.1.0.0/16", (1,)))
    rows = agg.flush()
    assert agg.late == 1 and rows[0]["announcements"] == 2


def test_simulation_is_dense_repeatable_and_has_some_flaps() -> None:
    sim = SessionSimulation(sessions=300, windows=40, seed=3)
    a, b = simulate_windows(sim), simulate_windows(sim)
    assert len(a) == 300 * 40
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby("session_id").size().eq(40).all()
    labels = flap_labels(a, sim.window_s, 1800, 0.5)
    share = labels.mean()
    assert 0.005 < share < 0.2, share


def test_time_split_never_mixes_past_and_future() -> None:
    stamps = pd.Series(pd.date_range(T0, periods=100, freq="5min", tz="UTC"))
    split = time_split(stamps, 0.15, 0.15)
    assert split.first < split.valid_from < split.test_from <= split.last
    frame = pd.DataFrame({TIMESTAMP: stamps, "x": range(100)})
    train, valid, test = (split.part(frame, p) for p in ("train", "validation", "test"))
    assert len(train) + len(valid) + len(test) == 100
    assert train[TIMESTAMP].max() < valid[TIMESTAMP].min()
    assert valid[TIMESTAMP].max() < test[TIMESTAMP].min()
    with pytest.raises(ValueError, match="at least 3"):
        time_split(stamps[:2])


def test_evaluation_metrics() -> None:
    y = np.array([0, 0, 0, 1, 1] * 40, dtype=float)
    perfect = evaluate(y, y * 0.9 + 0.05)
    assert perfect["roc_auc"] == 1.0 and perfect["precision_top_1pct"] == 1.0
    assert perfect["calibration_error"] < 0.1
    with pytest.raises(ValueError, match="both"):
        evaluate(np.zeros(10), np.zeros(10))
