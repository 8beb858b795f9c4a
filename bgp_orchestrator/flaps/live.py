"""Flap features of a live stream, one closed window at a time.

:class:`LiveFeatures` runs the one feature implementation
(:func:`~bgp_orchestrator.flaps.features.derive_features`) on a compact
per-session history plus the new window, and keeps only the new window's rows.
The history is what ``derive_features`` looks back on:

* the base rows of the last :data:`LOOKBACK_S` of windows (the 1-hour rolling
  sums, and the previous window for ``prefix_count_delta``);
* per session, the newest window with a session down that has left that hour
  (for ``time_since_last_flap_s``), dropped once it is older than the cap
  (:data:`~bgp_orchestrator.flaps.features.NO_FLAP_S`).

Placed before the hour, that one row changes no rolling sum of the new window
(they cover the last hour of rows only) but gives the forward-filled time of
the last flap, so the answer equals ``derive_features`` over the whole history.

:class:`LiveFeatureWriter` appends each window's rows to the offline store as
``live-<window start>-<writer>.parquet``; the file is also the marker of the
windows a writer has done (:meth:`LiveFeatureWriter.last_written`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from bgp_orchestrator.flaps.compaction import Compacted, compact, covered, writer_files
from bgp_orchestrator.flaps.feature_store import offline_dir, write_offline
from bgp_orchestrator.flaps.features import (
    BASE_COLUMNS,
    ENTITY,
    NO_FLAP_S,
    TIMESTAMP,
    derive_features,
)

if TYPE_CHECKING:
    from bgp_orchestrator.settings import Settings

#: How far back derive_features looks in rows: its longest rolling sum is one hour.
LOOKBACK_S = 3600

_COLUMNS = [ENTITY, "window_start", *BASE_COLUMNS]
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The base columns of window rows (extra keys such as distinct_origins dropped)."""
    frame = pd.DataFrame.from_records(list(rows), columns=_COLUMNS)
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    frame[ENTITY] = frame[ENTITY].astype(object)
    frame[list(BASE_COLUMNS)] = frame[list(BASE_COLUMNS)].astype("int64")
    return frame


class LiveFeatures:
    """Features of each new window from a bounded history; see the module docstring."""

    def __init__(self, window_s: int) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        # Windows kept, the new one included: covers derive_features' hour of rows.
        self.keep = max(2, math.ceil(LOOKBACK_S / window_s))
        self._history = _frame([])
        self._flaps = _frame([])  # newest window with downs > 0 that left the history

    @property
    def history_rows(self) -> int:
        return len(self._history) + len(self._flaps)

    def update(self, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Features (``session_id``, ``event_timestamp``, FEATURES) of one closed window's
        rows, which must all share one ``window_start`` later than any seen before."""
        new = _frame(rows)
        if new.empty:
            return derive_features(new, self.window_s)
        starts = new["window_start"].unique()
        if len(starts) != 1:
            raise ValueError(f"rows of one window expected, got {len(starts)} window starts")
        start = pd.Timestamp(starts[0])
        if not self._history.empty and start <= self._history["window_start"].max():
            raise ValueError(f"window {start} is not after the windows already seen")
        cutoff = start - pd.Timedelta(seconds=(self.keep - 1) * self.window_s)
        combined = pd.concat([self._history, new], ignore_index=True) if len(self._history) else new
        leaving = combined[combined["window_start"] < cutoff]
        if not leaving.empty:
            flapped = leaving[leaving["downs"] > 0]
            if not flapped.empty:
                self._flaps = (
                    pd.concat([self._flaps, flapped], ignore_index=True)
                    .sort_values("window_start", kind="stable")
                    .drop_duplicates(ENTITY, keep="last")
                    .reset_index(drop=True)
                )
        end = start + pd.Timedelta(seconds=self.window_s)
        # A flap whose window ended a cap or more ago reads as "never" anyway.
        flap_end = self._flaps["window_start"] + pd.Timedelta(seconds=self.window_s)
        self._flaps = self._flaps[flap_end > end - pd.Timedelta(seconds=NO_FLAP_S)]
        self._history = combined[combined["window_start"] >= cutoff].reset_index(drop=True)
        frames = [f for f in (self._flaps, self._history) if not f.empty]
        features = derive_features(pd.concat(frames, ignore_index=True), self.window_s)
        return features[features[TIMESTAMP] == end].reset_index(drop=True)


def _writer_tag(writer: str) -> str:
    tag = _SAFE.sub("_", writer).strip("_")
    if not tag:
        raise ValueError(f"writer id {writer!r} has no usable characters")
    return tag


class LiveFeatureWriter:
    """Live features of each closed window into the offline store (one file per window,
    compacted per hour and day by :mod:`~bgp_orchestrator.flaps.compaction`)."""

    def __init__(self, settings: Settings, writer: str) -> None:
        self.settings = settings
        self.writer = _writer_tag(writer)
        self.features = LiveFeatures(settings.flap_window_s)
        self.skipped = 0  # windows already in a compacted file (a replay)
        self._derived: tuple[int, pd.DataFrame] | None = None

    def file_name(self, start: int) -> str:
        return f"live-{start}-{self.writer}"

    def write_window(self, start: int, rows: Sequence[Mapping[str, Any]]) -> int:
        """Derive and store the features of window ``start`` (epoch s); the rows written.

        Called again for the same window after a failed write, it writes the features
        derived the first time (the history has moved on already). CPU-bound (pandas
        over the last hour of every session): run it in a thread.
        """
        if self._derived is not None and self._derived[0] == start:
            features = self._derived[1]
        else:
            features = self.features.update(rows)
            self._derived = (start, features)
        if features.empty:
            return 0
        expected = datetime.fromtimestamp(start + self.settings.flap_window_s, UTC)
        if features[TIMESTAMP].iloc[0] != pd.Timestamp(expected):
            raise ValueError(f"the rows are not of the window starting at {start}")
        folder = offline_dir(self.settings)
        if covered(folder, self.writer, self.settings.flap_window_s, start):
            self.skipped += 1
            return 0
        write_offline(self.settings, features, self.file_name(start))
        return len(features)

    def last_written(self) -> int | None:
        """Start (epoch s) of the newest window this writer has stored, if any."""
        files = writer_files(offline_dir(self.settings), self.writer, self.settings.flap_window_s)
        return max((f.end - self.settings.flap_window_s for f in files), default=None)

    def compact(self, newest: int, after_s: int) -> Compacted:
        """Merge this writer's window files of the hours and days ``after_s`` behind."""
        return compact(
            offline_dir(self.settings), self.writer, self.settings.flap_window_s, newest, after_s
        )
