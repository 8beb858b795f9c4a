"""Training data for the flap model: simulated sessions and real MRT dumps.

Both become the same thing: per-session window counts, then features and
labels (:func:`features_and_labels`), written to the offline store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from bgp_orchestrator.bgp.parsers import mrt
from bgp_orchestrator.flaps.features import LABEL, derive_features, flap_labels
from bgp_orchestrator.flaps.training import LabelSpec
from bgp_orchestrator.flaps.windows import WindowAggregator
from bgp_orchestrator.simulation.sessions import SessionSimulation, simulate_windows


def features_and_labels(base: pd.DataFrame, spec: LabelSpec) -> pd.DataFrame:
    """Features of every window, with the label where the horizon is known (else NaN)."""
    frame = derive_features(base, spec.window_s)
    frame[LABEL] = flap_labels(base, spec.window_s, spec.horizon_s, spec.withdraw_share)
    return frame


def simulated(sim: SessionSimulation, spec: LabelSpec) -> pd.DataFrame:
    if sim.window_s != spec.window_s:
        raise ValueError("the simulation and the label spec must use the same window")
    return features_and_labels(simulate_windows(sim), spec)


def mrt_windows(
    paths: Iterable[Path], window_s: int, progress: Callable[[int], None] | None = None
) -> tuple[pd.DataFrame, int]:
    """Window counts of the sessions in MRT update dumps, and the corrupted records skipped.

    Each file's sessions are windowed on their own (files from different
    collectors or days do not form one timeline).
    """
    frames = []
    corrupted = 0
    for path in paths:
        aggregator = WindowAggregator(window_s)
        rows = []
        for record in mrt.read(path):
            if record.error is not None:
                corrupted += 1
                continue
            for update in record.updates:
                rows.extend(aggregator.add(update))
            if progress:
                progress(1)
        rows.extend(aggregator.flush())
        if rows:
            frame = pd.DataFrame(rows)
            frame["session_id"] = path.name.split(".gz")[0] + "|" + frame["session_id"]
            frames.append(frame)
    if not frames:
        raise ValueError("the MRT files hold no updates")
    return pd.concat(frames, ignore_index=True), corrupted
