"""The trailing multivariate detector in the fitting job: a session's metrics together.

The per-series seasonal bands see each metric of a session alone; this view
(:mod:`bgp_orchestrator.anomaly.trailing`) scores the session's volumes
(updates, withdrawals, prefixes held, origins) and their mix (withdrawals'
share of the updates) together against a trailing baseline that flagged steps
are kept out of, so an incident of hours stays anomalous instead of becoming
the baseline. The fitting job's chunks are session buckets, so every metric of
a session is in the same chunk; all the sessions of a chunk are scored in one
batch (:func:`~bgp_orchestrator.anomaly.trailing.trailing_many`).

Each run of reported steps is one :class:`~bgp_orchestrator.anomaly.detect.Anomaly`
of the metric :data:`TRAILING_METRIC`, stored with engine ``trailing``: its
score the largest robust z at the peak, its actual/expected/band those of the
feature that moved most there (in the feature's own units), its severity the
larger of the score's and that of how many features moved together; the
window names that feature and the ones that moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from bgp_orchestrator.anomaly.detect import (
    CONTEXT,
    SEVERITIES,
    Anomaly,
    _runs,
    moments,
    severity_of,
)
from bgp_orchestrator.anomaly.engines import FitParams
from bgp_orchestrator.anomaly.prepare import Prepared
from bgp_orchestrator.anomaly.series import METRICS, TRAILING_METRIC, SeriesKey
from bgp_orchestrator.anomaly.trailing import (
    TrailingBatch,
    TrailingParams,
    mix_ratio,
    scaled,
    severity_of_count,
    trailing_many,
)
from bgp_orchestrator.anomaly.trailing_rule import RULE

TRAILING_ENGINE = "trailing"
_INF = float("inf")
UPDATES = "bgpo_session_update_rate"
WITHDRAWALS = "bgpo_session_withdrawal_rate"
#: The mix feature: withdrawals' share of the session's updates.
WITHDRAWAL_SHARE = "withdrawal_share"


def live_params(fit: FitParams) -> TrailingParams:
    """The job's trailing settings at its step: those of the one rule the real
    incident sets are scored with (:data:`bgp_orchestrator.anomaly.trailing_rule.RULE`),
    so what the benchmark measures is what the job runs. At the default hourly
    step that is a 30-step baseline, k 5, a spread floor of 0.5, an incident held
    while features stay beyond 2 sigmas, and no persistence (the rule confirms
    within 5 minutes; an hour is its own confirmation). A per-collector view of
    several peers out at once is not here: it needs a collector's sessions
    together, and the job's chunks are session buckets (on the real sets it
    detected no incident the rule missed)."""
    return RULE.params(fit.resolution_s)


@dataclass(frozen=True)
class _Session:
    session: str
    peer_asn: int
    index: pd.DatetimeIndex
    volumes: np.ndarray  # (Fv, T) raw values
    ratios: np.ndarray  # (Fr, T)


def _sessions(prepared: list[Prepared]) -> dict[tuple[tuple[str, ...], int], list[_Session]]:
    """Sessions grouped by (their features, steps) so each group is one batch; a
    session's metrics are cut to the steps they all have."""
    by_session: dict[str, dict[str, Prepared]] = {}
    for item in prepared:
        key = SeriesKey.parse(item.series_id)
        if key.metric in METRICS:
            by_session.setdefault(key.session, {})[key.metric] = item
    groups: dict[tuple[tuple[str, ...], int], list[_Session]] = {}
    for session, metrics in by_session.items():
        names = tuple(m for m in METRICS if m in metrics)
        first = metrics[names[0]].index
        if all(metrics[m].index is first for m in names[1:]):  # one step grid (the usual)
            cut = {m: (first, metrics[m].values) for m in names}
        else:
            start = max(metrics[m].index[0] for m in names)
            end = min(metrics[m].index[-1] for m in names)
            if end < start:
                continue
            cut = {}
            for m in names:
                index = metrics[m].index
                lo, hi = index.searchsorted(start), index.searchsorted(end, side="right")
                cut[m] = (index[lo:hi], metrics[m].values[lo:hi])
        index = cut[names[0]][0]
        if any(len(cut[m][0]) != len(index) for m in names):
            continue  # steps on different grids: not comparable step by step
        volumes = np.stack([cut[m][1] for m in names])
        ratios = np.zeros((0, len(index)))
        features = names
        if UPDATES in names and WITHDRAWALS in names:
            w = cut[WITHDRAWALS][1]
            share = mix_ratio(w, np.clip(cut[UPDATES][1] - w, 0, None))
            ratios = share[None]
            features = (*names, WITHDRAWAL_SHARE)
        asn = metrics[names[0]].peer_asn
        groups.setdefault((features, len(index)), []).append(
            _Session(session, asn, index, volumes, ratios)
        )
    return groups


def _unscaled(values: np.ndarray, volume: bool) -> np.ndarray:
    """Back from the scored scale to the feature's units (span 1)."""
    return np.clip(np.expm1(values), 0, None) if volume else values / 10


def _anomalies_of(
    item: _Session,
    number: int,
    batch: TrailingBatch,
    features: tuple[str, ...],
    params: TrailingParams,
    since: datetime | None,
) -> list[Anomaly]:
    flags = batch.flags[number]
    if not flags.any():
        return []
    z = batch.z[number]  # (F, T)
    scores = np.abs(z).max(axis=0)
    raw = np.concatenate([item.volumes, item.ratios])
    width = len(item.volumes)
    found = []
    at = moments(item.index)
    for start, stop in _runs(flags):
        end_at = at(stop - 1)
        if since is not None and end_at < since:
            continue
        peak = start + int(np.argmax(scores[start:stop]))
        feature = int(np.argmax(np.abs(z[:, peak])))
        volume = feature < width
        median = batch.median[number, feature]
        spread = params.k * batch.sigma[number, feature]
        expected = _unscaled(median, volume)
        lower, upper = _unscaled(median - spread, volume), _unscaled(median + spread, volume)
        moved = [f for f, zf in zip(features, z[:, peak], strict=True) if abs(zf) > params.k]
        score = float(scores[peak])
        by_score, by_count = severity_of(score), severity_of_count(len(moved), len(features))
        lo, hi = max(0, start - CONTEXT), min(len(item.index), stop + CONTEXT)
        window: dict[str, Any] = {
            "timestamps": (item.index.asi8[lo:hi] // 1_000_000_000).tolist(),
            "feature": features[feature],
            "moved": moved,
        }
        for name, array in (
            ("actual", raw[feature]),
            ("expected", expected),
            ("lower", lower),
            ("upper", upper),
        ):
            segment = np.round(array[lo:hi], 6)
            # NaN fails both comparisons: None for it and for an infinity (a
            # scalar np.isfinite per value cost more than the detector itself)
            window[name] = [v if -_INF < v < _INF else None for v in segment.tolist()]
        found.append(
            Anomaly(
                metric=TRAILING_METRIC,
                session=item.session,
                peer_asn=item.peer_asn,
                start_at=at(start),
                end_at=end_at,
                points=stop - start,
                peak_at=at(peak),
                score=round(score, 4),
                actual=float(raw[feature, peak]),
                expected=float(expected[peak]),
                lower=float(lower[peak]),
                upper=float(upper[peak]),
                direction="above" if z[feature, peak] > 0 else "below",
                severity=max(by_score, by_count, key=SEVERITIES.index),
                window=window,
            )
        )
    return found


def session_anomalies(
    prepared: list[Prepared], params: TrailingParams, *, since: datetime | None = None
) -> tuple[list[Anomaly], int]:
    """The trailing detector's anomalies of every session among ``prepared`` (its
    metrics' series), those ending at or after ``since``; and how many sessions
    were scored (those with at least ``params.min_history + 1`` common steps)."""
    found: list[Anomaly] = []
    scored = 0
    for (features, steps), items in _sessions(prepared).items():
        if steps <= params.min_history:
            continue
        volumes = np.stack([s.volumes for s in items])
        ratios = np.stack([s.ratios for s in items])
        batch = trailing_many(scaled(volumes, ratios, params.span), params)
        scored += len(items)
        for number, item in enumerate(items):
            found.extend(_anomalies_of(item, number, batch, features, params, since))
    return found, scored
