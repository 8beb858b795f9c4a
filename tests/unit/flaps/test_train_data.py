"""The training job's split of the offline data, read on the driver (no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bgp_orchestrator.flaps.features import ENTITY, FEATURES, LABEL, TIMESTAMP
from jobs.train_flap_model import Labelled


def _offline(folder: Path) -> pd.DataFrame:
    """Two sessions x 40 windows in two files; the newest windows' labels unknown."""
    times = pd.date_range("2026-11-01", periods=40, freq="5min", tz="UTC")
    rows = []
    for s in ("a|192.0.2.1", "b|192.0.2.2"):
        for i, t in enumerate(times):
            label = np.nan if i >= 36 else float(i % 7 == 0)
            rows.append(
                {ENTITY: s, TIMESTAMP: t, **dict.fromkeys(FEATURES, float(i)), LABEL: label}
            )
    frame = pd.DataFrame(rows)
    folder.mkdir()
    frame.iloc[:40].to_parquet(folder / "one.parquet", index=False)
    frame.iloc[40:].to_parquet(folder / "two.parquet", index=False)
    return frame


def test_split_counts_and_test_rows_come_from_labelled_rows_only(tmp_path: Path) -> None:
    frame = _offline(tmp_path / "offline")
    data = Labelled.of(tmp_path / "offline")
    labelled = frame[frame[LABEL].notna()]
    split = data.split
    assert split.valid_from < split.test_from <= split.last
    assert data.train_rows == int((labelled[TIMESTAMP] < split.valid_from).sum())

    test = data.test_rows()
    want = split.part(labelled, "test")
    assert len(test) == len(want) > 0
    assert test[LABEL].notna().all()  # the unknown horizons are not test rows
    assert set(test[TIMESTAMP]) == set(want[TIMESTAMP])
    assert test[TIMESTAMP].min() >= split.test_from
    assert list(test.columns) == [ENTITY, TIMESTAMP, *FEATURES, LABEL]
