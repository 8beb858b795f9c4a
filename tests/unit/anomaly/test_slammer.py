"""The detector on the labelled SQL Slammer minutes: time-ordered, both halves scored."""

from pathlib import Path

import numpy as np
import pytest

from bgp_orchestrator.anomaly import slammer
from bgp_orchestrator.anomaly.engines import FitParams


@pytest.fixture
def data(bgp_data: Path) -> slammer.Labelled:
    path = bgp_data / "anomaly" / "slammer-2003.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return slammer.load(path)


def test_loads_minutes_and_labels(data: slammer.Labelled) -> None:
    assert len(data.labels) == 7188
    anomalous = np.flatnonzero(data.labels)
    assert (anomalous[0], anomalous[-1]) == (3199, 4067)
    assert set(data.columns) == set(slammer.VOLUME_COLUMNS)


def test_statsforecast_detects_the_worm_on_unseen_minutes(data: slammer.Labelled) -> None:
    result = slammer.evaluate(data, FitParams(), ks=(3.0, 5.0))
    assert result.split_row == 3594
    # Chosen on the first half only; the second half was never seen when choosing.
    assert result.train.f1 > 0.8
    assert result.test.recall > 0.3 and result.test.precision > 0.3


def test_a_short_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="expected 42 columns"):
        slammer.load(bad)
