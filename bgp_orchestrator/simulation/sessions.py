"""Window-level simulation of BGP sessions for flap prediction (ground truth known).

Simulating 80,000 sessions for 100 five-minute windows update by update would
mean hundreds of millions of updates; this model draws each window's counts
(:data:`~bgp_orchestrator.flaps.features.BASE_COLUMNS`) directly, vectorised
over sessions, from a small generative story:

* each session has a routing table size (a few full-table peers, most small),
  a base update rate and an instability (most sessions stable, some not);
* a latent *stress* (a degrading link, an overloaded router) comes in
  episodes; while it lasts, withdrawals and path changes rise and the hazard
  of the session going down or withdrawing most of its table rises steeply;
* maintenance hours (02:00-05:00 UTC) raise the hazard a little;
* a session that goes down loses its table and re-announces it when it comes
  back (the burst that follows a reset).

The flaps and mass withdrawals it draws are exactly what
:func:`~bgp_orchestrator.flaps.features.flap_labels` labels, so the labels are
the simulation's ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from bgp_orchestrator.flaps.features import BASE_COLUMNS, ENTITY


@dataclass(frozen=True)
class SessionSimulation:
    sessions: int = 80_000
    windows: int = 100
    window_s: int = 300
    start: datetime = datetime(2026, 11, 2, tzinfo=UTC)
    seed: int = 7
    unstable_share: float = 0.1
    stress_episode_rate: float = 0.004  # episodes per session and window

    def session_ids(self) -> list[str]:
        return [f"sim|10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(self.sessions)]


def simulate_windows(sim: SessionSimulation) -> pd.DataFrame:
    """Dense window counts for ``sim.sessions`` x ``sim.windows`` rows."""
    if sim.sessions <= 0 or sim.windows <= 0:
        raise ValueError("sessions and windows must be positive")
    rng = np.random.default_rng(sim.seed)
    n = sim.sessions
    table = np.where(
        rng.random(n) < 0.01,
        rng.integers(700_000, 950_000, n),
        np.minimum(rng.lognormal(3.5, 1.2, n), 50_000).astype(np.int64) + 1,
    ).astype(np.float64)
    # Announcements per quiet window: a few percent of the table.
    rate = np.maximum(table * rng.lognormal(np.log(0.03), 0.7, n), 0.5)
    instability = np.where(
        rng.random(n) < sim.unstable_share, rng.uniform(0.004, 0.03, n), rng.uniform(0, 5e-4, n)
    )
    path_len = rng.uniform(2.5, 6.0, n)

    stress = np.zeros(n)
    held = table.copy()
    columns: dict[str, list[np.ndarray]] = {c: [] for c in BASE_COLUMNS}
    starts = []
    for w in range(sim.windows):
        when = sim.start.timestamp() + w * sim.window_s
        hour = datetime.fromtimestamp(when, UTC).hour
        # Stress: episodes start at random, last a few windows, decay.
        onset = rng.random(n) < sim.stress_episode_rate * (1 + 20 * instability / 0.03)
        stress = np.where(onset, rng.uniform(1.0, 3.0, n), stress * 0.6)
        maintenance = 1.6 if 2 <= hour < 5 else 1.0
        hazard = np.clip(instability * maintenance * np.exp(1.4 * stress), 0, 0.9)
        event = rng.random(n) < hazard
        goes_down = event & (rng.random(n) < 0.7)
        mass_withdraw = event & ~goes_down

        down_now = goes_down.astype(np.float64)
        re_announce = np.where(goes_down, table, 0.0)  # the table comes back after the reset
        churn = 1 + 2.5 * stress
        announcements = rng.poisson(rate * churn) + re_announce
        withdrawn_bulk = np.where(mass_withdraw, np.floor(held * rng.uniform(0.5, 0.95, n)), 0.0)
        withdrawals = (
            np.minimum(rng.poisson(rate * 0.2 * (1 + 1.5 * stress)), held) + withdrawn_bulk
        )
        held = np.clip(held - withdrawn_bulk, 0, None)
        # Withdrawn prefixes come back over the next windows.
        held = np.minimum(table, held + np.where(~mass_withdraw, table * 0.3, 0))
        held = np.where(goes_down, table, held)
        changes = rng.binomial(
            np.maximum(announcements - re_announce, 0).astype(np.int64),
            np.clip(0.1 + 0.25 * stress, 0, 0.95),
        )
        lengths = announcements * (path_len + rng.normal(0, 0.3, n) + 0.4 * stress)

        columns["announcements"].append(announcements)
        columns["withdrawals"].append(withdrawals)
        columns["distinct_prefixes"].append(
            np.minimum(np.floor((announcements + withdrawals) * 0.85), table)
        )
        columns["path_len_sum"].append(np.maximum(lengths, 0).round())
        columns["path_len_count"].append(announcements)
        columns["path_changes"].append(changes.astype(np.float64))
        columns["downs"].append(down_now)
        columns["ups"].append(down_now)
        columns["prefix_count"].append(held)
        starts.append(when)

    ids = np.array(sim.session_ids(), dtype=object)
    frame = pd.DataFrame(
        {
            ENTITY: np.repeat(ids, sim.windows),
            "window_start": pd.to_datetime(
                np.tile(np.array(starts) * 1e9, n).astype("int64"), utc=True
            ),
            "peer_asn": np.repeat(64_512 + np.arange(n) % 1000, sim.windows),
        }
    )
    for name, chunks in columns.items():
        # chunks[w][s] -> row s * windows + w (sessions outer, windows inner)
        frame[name] = np.stack(chunks, axis=1).reshape(-1).astype(np.float32)
    return frame
