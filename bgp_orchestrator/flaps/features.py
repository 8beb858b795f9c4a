"""Per-session flap features: one implementation for training and for serving.

Two layers:

* **Window counts** (:data:`BASE_COLUMNS`): what a session did in one time
  window (announcements, withdrawals, AS-path lengths, path changes, session
  downs and ups, prefixes held at the window's end). They come from updates
  (:class:`~bgp_orchestrator.flaps.windows.WindowAggregator`) or from the
  window-level simulator.
* **Features** (:data:`FEATURES`, in the model's input order), derived from a
  session's consecutive windows by :func:`derive_features`. The training data,
  the offline store, the online store and the predictor all see the output of
  this one function.

Windows are dense: every session has a row for every window of its history
(empty windows are zeros), which keeps the rolling features plain arithmetic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# One window's counts for one session.
BASE_COLUMNS = (
    "announcements",
    "withdrawals",
    "distinct_prefixes",
    "path_len_sum",
    "path_len_count",
    "path_changes",
    "downs",
    "ups",
    "prefix_count",
)

# The model's inputs, in this order (the ONNX graph's input columns).
FEATURES = (
    "announcements",
    "withdrawals",
    "distinct_prefixes",
    "path_len_mean",
    "path_change_rate",
    "state_changes_1h",
    "withdrawals_1h",
    "announcements_1h",
    "time_since_last_flap_s",
    "prefix_count",
    "prefix_count_delta",
    "hour_of_day",
    "day_of_week",
)

ENTITY = "session_id"
TIMESTAMP = "event_timestamp"  # the end of the window the features describe
LABEL = "label"

# A session never seen going down is "a week since its last flap" (the cap).
NO_FLAP_S = 7 * 24 * 3600.0


def _windows_per(seconds: float, window_s: int) -> int:
    return max(1, round(seconds / window_s))


def _group_starts(codes: np.ndarray) -> np.ndarray:
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = codes[1:] != codes[:-1]
    return starts


def _rolling_sum(values: np.ndarray, group_index: np.ndarray, k: int) -> np.ndarray:
    """Sum of the last ``k`` rows (this one included) within each group."""
    csum = np.cumsum(values, dtype=np.float64)
    out = csum.copy()
    n = len(values)
    idx = np.arange(n)
    back = idx - k
    # Rows whose window reaches back past the group's first row sum from the group start.
    inside = back >= group_index
    out[inside] -= csum[back[inside]]
    before = group_index - 1
    outside = ~inside & (before >= 0)
    out[outside] -= csum[before[outside]]
    return out


def _sorted(base: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (ENTITY, "window_start", *BASE_COLUMNS) if c not in base.columns]
    if missing:
        raise ValueError(f"window counts lack the columns {', '.join(missing)}")
    return base.sort_values([ENTITY, "window_start"], kind="stable").reset_index(drop=True)


def derive_features(base: pd.DataFrame, window_s: int) -> pd.DataFrame:
    """Features for every (session, window) row of ``base``.

    ``base`` holds :data:`BASE_COLUMNS` plus ``session_id`` and ``window_start``
    (UTC timestamps, one row per session and window, no gaps). The answer has
    ``session_id``, ``event_timestamp`` (the window's end) and :data:`FEATURES`
    as float32, sorted by session and time.
    """
    frame = _sorted(base)
    codes = pd.factorize(frame[ENTITY])[0]
    starts = _group_starts(codes)
    group_first = np.maximum.accumulate(np.where(starts, np.arange(len(frame)), 0))
    hour = _windows_per(3600, window_s)

    ends = pd.to_datetime(frame["window_start"], utc=True) + pd.Timedelta(seconds=window_s)
    end_s = ends.astype("int64").to_numpy() / 1e9

    announcements = frame["announcements"].to_numpy(np.float64)
    withdrawals = frame["withdrawals"].to_numpy(np.float64)
    downs = frame["downs"].to_numpy(np.float64)
    changes = downs + frame["ups"].to_numpy(np.float64)
    path_count = frame["path_len_count"].to_numpy(np.float64)
    prefix_count = frame["prefix_count"].to_numpy(np.float64)

    previous_count = np.empty_like(prefix_count)
    previous_count[1:] = prefix_count[:-1]
    previous_count[starts] = prefix_count[starts]  # a history starts with no delta

    last_flap = pd.Series(np.where(downs > 0, end_s, np.nan)).groupby(codes).ffill().to_numpy()
    since = np.where(np.isnan(last_flap), NO_FLAP_S, np.minimum(end_s - last_flap, NO_FLAP_S))

    out = pd.DataFrame(
        {
            ENTITY: frame[ENTITY].to_numpy(),
            TIMESTAMP: ends.to_numpy(),
            "announcements": announcements,
            "withdrawals": withdrawals,
            "distinct_prefixes": frame["distinct_prefixes"].to_numpy(np.float64),
            "path_len_mean": np.divide(
                frame["path_len_sum"].to_numpy(np.float64),
                path_count,
                out=np.zeros(len(frame)),
                where=path_count > 0,
            ),
            "path_change_rate": np.divide(
                frame["path_changes"].to_numpy(np.float64),
                announcements,
                out=np.zeros(len(frame)),
                where=announcements > 0,
            ),
            "state_changes_1h": _rolling_sum(changes, group_first, hour),
            "withdrawals_1h": _rolling_sum(withdrawals, group_first, hour),
            "announcements_1h": _rolling_sum(announcements, group_first, hour),
            "time_since_last_flap_s": since,
            "prefix_count": prefix_count,
            "prefix_count_delta": prefix_count - previous_count,
            "hour_of_day": ends.dt.hour.to_numpy(np.float64),
            "day_of_week": ends.dt.dayofweek.to_numpy(np.float64),
        }
    )
    out[list(FEATURES)] = out[list(FEATURES)].astype(np.float32)
    return out


def flap_labels(
    base: pd.DataFrame, window_s: int, horizon_s: int, withdraw_share: float
) -> pd.Series:
    """1 if the session goes down, or withdraws at least ``withdraw_share`` of the
    prefixes it holds, within the ``horizon_s`` after the window; 0 if not; NaN
    where the history ends before the horizon does (unknown).

    Aligned with :func:`derive_features` (same sorting).
    """
    if not 0 < withdraw_share <= 1:
        raise ValueError(f"withdraw_share must be in (0, 1], got {withdraw_share}")
    frame = _sorted(base)
    codes = pd.factorize(frame[ENTITY])[0]
    horizon = _windows_per(horizon_s, window_s)
    n = len(frame)
    # Reverse the rows so that "the next H windows" becomes "the previous H".
    rev_codes = codes[::-1]
    rev_starts = _group_starts(rev_codes)
    rev_first = np.maximum.accumulate(np.where(rev_starts, np.arange(n), 0))
    downs = frame["downs"].to_numpy(np.float64)[::-1]
    withdrawals = frame["withdrawals"].to_numpy(np.float64)[::-1]
    # Sum over the H rows *after* this one: window of H+1 ending here, minus this row.
    future_downs = (_rolling_sum(downs, rev_first, horizon + 1) - downs)[::-1]
    future_withdrawals = (_rolling_sum(withdrawals, rev_first, horizon + 1) - withdrawals)[::-1]
    rows_after = (np.arange(n) - rev_first)[::-1]
    held = frame["prefix_count"].to_numpy(np.float64)
    positive = (future_downs > 0) | ((held > 0) & (future_withdrawals >= withdraw_share * held))
    label = np.where(positive, 1.0, 0.0)
    # Unknown even when a flap is already seen: keeping only the positives of a
    # history's last windows would bias the newest rows (the test part) to flaps.
    label[rows_after < horizon] = np.nan
    return pd.Series(label, name=LABEL)


def baseline_score(features: pd.DataFrame) -> np.ndarray:
    """The naive rule the model must beat: more recent session changes, more risk
    (ties broken by how recent the last flap was)."""
    changes: np.ndarray = features["state_changes_1h"].to_numpy(np.float64)
    since: np.ndarray = features["time_since_last_flap_s"].to_numpy(np.float64)
    score: np.ndarray = changes + 1.0 / (1.0 + since / 60.0)
    return score
