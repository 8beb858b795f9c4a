"""Scoring detection parameters on labelled series (what Ray Tune maximizes)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from bgp_orchestrator.anomaly.band import bands_from_expected
from bgp_orchestrator.anomaly.engines import FitParams, expected_values
from bgp_orchestrator.anomaly.evaluation import Scores, point_scores
from bgp_orchestrator.anomaly.prepare import Prepared
from bgp_orchestrator.anomaly.synthetic import LabelledSeries

#: What ``--tune`` searches: season lengths (in steps), band width, smoothing.
SEARCH_SPACE: dict[str, Any] = {
    "season_length": ("choice", [24, 168]),
    "k": ("uniform", 2.5, 5.0),
    "alpha": ("loguniform", 0.01, 0.3),
}


def flags_for(data: LabelledSeries, params: FitParams) -> np.ndarray:
    """Flagged steps of every labelled series under ``params`` (regular series:
    no resampling needed)."""
    prepared = [
        Prepared(f"m/{session}", int(asn), data.index, row, 0)
        for session, asn, row in zip(data.sessions, data.peer_asns, data.values, strict=True)
    ]
    expected = expected_values(prepared, params)
    flags = np.zeros(data.values.shape, dtype=bool)
    bands = bands_from_expected(
        [item.values for item in prepared],
        [expected[item.series_id] for item in prepared],
        params.k,
    )
    for number, (item, band) in enumerate(zip(prepared, bands, strict=True)):
        flags[number] = band.flags(item.values)
    return flags


def score(data: LabelledSeries, params: FitParams) -> Scores:
    return point_scores(flags_for(data, params), data.labels)


def with_config(base: FitParams, config: dict[str, Any]) -> FitParams:
    """``base`` with the tuned values of ``config`` (unknown keys refused)."""
    known = set(SEARCH_SPACE)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"not tunable: {', '.join(sorted(unknown))}")
    return replace(base, **config)
