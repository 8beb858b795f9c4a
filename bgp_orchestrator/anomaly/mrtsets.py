"""Labelled incident sets made from real MRT update dumps, labelled from the data.

Each dump (RIS / RouteViews, in the shared data folder's ``mrt/``) becomes one
collector's series of 10-second steps, read with the project's MRT parser
(:mod:`bgp_orchestrator.bgp.parsers.mrt`): per step, the collector's
announcements and withdrawals (prefixes), how many peers sent anything, and
each peer's updates. Steps start at the file's first update.

How a step is labelled (an incident is a run of labelled steps); the rules use
what the data says happened to the sessions, not the features scored:

- **state-change burst**: ``STATE_BURST`` or more BGP session state changes
  (BGP4MP_STATE_CHANGE records, any transition) in the step, over all of the
  collector's peers; the step and the ``STATE_AFTER`` steps after it are the
  incident (the sessions' re-establishment traffic follows the change). A
  state change record carries no update, so it is timed by the update record
  read just before it (the dumps are in time order; the first update after it
  when none came before).
- **table-wide re-announcement**: one peer announces, within the step, at
  least ``TABLE_SHARE`` of all the distinct prefixes the collector saw
  announced in the file and at least ``TABLE_MIN`` prefixes — a session
  resending (part of) its table, as after a reset.

The volume features are counted from the same updates the re-announcement
rule counts one peer's prefixes in, so that label is not independent of the
features (it is of the collector's totals, which mix every peer); the state
change rule is independent of them. Dumps in which no step meets either rule
are background sets: they count false events only.

Each set also keeps which peers changed state (:attr:`RealSet.state_peers`):
in the dumps at hand every state-change burst is of peers cycling between
non-Established states (Connect/Active, OpenSent/OpenConfirm/Idle) that send
no update anywhere in the dump (:attr:`RealSet.silent_state_peers`), so no
feature made of updates carries those incidents; a detector that flags them
from the volumes flags a coincidence. Said per set so the benchmark can print
it rather than the reader having to take it on trust.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bgp_orchestrator.bgp.parsers import mrt
from bgp_orchestrator.bgp.update import Kind

STEP_S = 10
STATE_BURST = 4
STATE_AFTER = 2
TABLE_SHARE = 0.2
TABLE_MIN = 1000

#: Name -> dump under ``mrt/``. The ones with incidents by the rules above come
#: first; ``updates.et-header.2015.gz`` is left out: it holds only the ~37 s of
#: one peer's full-table burst (3 steps), with no normal step to compare against.
SETS: dict[str, str] = {
    "rrc15-2010-02-27": "rrc15_2010.02_updates.20100227.1600.gz",
    "rrc05-2010-07-22": "updates.20100722.2015.gz",
    "ris-2002-07-22": "updates.20020722.2238.gz",
    "jinx-2015-04-01": "routeviews.route-views.jinx.updates.1427846400.bz2",
    "rrc15-2010-02-27-1610": "rrc15_2010.02_updates.20100227.1610.gz",
    "ris-2016-08-11": "updates.20160811.1600.gz",
    "rrc01-2007-02-11": "updates.20070211.0141.gz",
    "rrc06-2015-04-01": "ris.rrc06.updates.1427846400.gz",
}


@dataclass(frozen=True)
class RealSet:
    name: str
    file: str
    step_s: int
    index: pd.DatetimeIndex
    columns: dict[str, np.ndarray]  # the collector's volume features
    peers: dict[str, np.ndarray]  # updates per step of each peer
    labels: np.ndarray
    state_changes: np.ndarray  # per step
    reasons: dict[str, int] = field(default_factory=dict)  # labelled steps per rule
    state_peers: dict[str, int] = field(default_factory=dict)  # state changes per peer

    @property
    def silent_state_peers(self) -> list[str]:
        """Peers that changed state but sent no announcement or withdrawal in the
        dump: their incidents are invisible to every update feature."""
        return sorted(p for p in self.state_peers if not self.peers.get(p, np.zeros(1)).any())

    @property
    def incidents(self) -> int:
        from bgp_orchestrator.anomaly.events import runs

        return len(runs(self.labels))


@dataclass
class _Dump:
    """What :func:`build` needs of a dump's records, in file order."""

    times: list[float] = field(default_factory=list)  # per announcement/withdrawal
    kinds: list[int] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    state_times: list[float | None] = field(default_factory=list)  # per state change
    state_peers: Counter[str] = field(default_factory=Counter)


def _read(path: Path) -> _Dump:
    dump = _Dump()
    last: float | None = None
    pending = 0  # state changes seen before any update
    # accepting every peer makes the reader give each record's peer address,
    # which a state change record carries no update to tell
    for record in mrt.read(path, peers=lambda _: True):
        for update in record.updates:
            if update.kind in (Kind.ANNOUNCE, Kind.WITHDRAW):
                dump.times.append(update.timestamp)
                dump.kinds.append(int(update.kind))
                dump.peers.append(update.peer_address)
                dump.prefixes.append(update.prefix)
            last = update.timestamp
            if pending:
                dump.state_times.extend([last] * pending)
                pending = 0
        if record.state_change:
            dump.state_peers[record.peer or ""] += 1
            if last is None:
                pending += 1
            else:
                dump.state_times.append(last)
    return dump


def build(path: Path, name: str = "", *, step_s: int = STEP_S) -> RealSet:
    """One collector's labelled 10-s steps from the MRT update dump at ``path``."""
    dump = _read(path)
    times, kinds, peers, prefixes = dump.times, dump.kinds, dump.peers, dump.prefixes
    if not times:
        raise ValueError(f"{path}: no announcements or withdrawals")
    t = np.asarray(times)
    origin = float(t.min())
    steps = int((t.max() - origin) // step_s) + 1
    bins = ((t - origin) // step_s).astype(np.int64)
    kind = np.asarray(kinds)
    announce = kind == int(Kind.ANNOUNCE)
    columns = {
        "announcements": np.bincount(bins[announce], minlength=steps).astype(np.float64),
        "withdrawals": np.bincount(bins[~announce], minlength=steps).astype(np.float64),
    }
    peer_codes, peer_names = pd.factorize(pd.Series(peers), sort=True)
    active = np.zeros(steps)
    per_peer: dict[str, np.ndarray] = {}
    for code, peer in enumerate(peer_names):
        counts = np.bincount(bins[peer_codes == code], minlength=steps).astype(np.float64)
        per_peer[str(peer)] = counts
        active += counts > 0
    columns["active_peers"] = active

    states = np.zeros(steps, dtype=np.int64)
    for at in dump.state_times:
        if at is not None:
            states[min(steps - 1, max(0, int((at - origin) // step_s)))] += 1
    state_label = np.zeros(steps, dtype=bool)
    for step in np.flatnonzero(states >= STATE_BURST):
        state_label[step : step + 1 + STATE_AFTER] = True

    distinct = len({p for p, a in zip(prefixes, announce.tolist(), strict=True) if a})
    threshold = max(TABLE_MIN, TABLE_SHARE * distinct)
    per_peer_announce = Counter(
        zip(bins[announce].tolist(), peer_codes[announce].tolist(), strict=True)
    )
    table_label = np.zeros(steps, dtype=bool)
    for (step, _), count in per_peer_announce.items():
        if count >= threshold:
            table_label[step] = True

    index = pd.date_range(
        pd.Timestamp(origin, unit="s", tz="UTC"), periods=steps, freq=f"{step_s}s"
    )
    return RealSet(
        name=name or path.name,
        file=path.name,
        step_s=step_s,
        index=index,
        columns=columns,
        peers=per_peer,
        labels=state_label | table_label,
        state_changes=states,
        reasons={
            "state-change burst": int(state_label.sum()),
            "table-wide re-announcement": int(table_label.sum()),
        },
        state_peers=dict(dump.state_peers),
    )


def load_all(data_dir: Path) -> list[RealSet]:
    """Every set of :data:`SETS` whose dump is under ``data_dir / "mrt"``."""
    out = []
    for name, file in SETS.items():
        path = data_dir / "mrt" / file
        if path.exists():
            out.append(build(path, name))
    return out
