"""Incident sets made from the real MRT dumps: labels, and which peers they are of."""

from pathlib import Path

import numpy as np
import pytest

from bgp_orchestrator.anomaly import mrtsets


def _build(bgp_data: Path, name: str) -> mrtsets.RealSet:
    path = bgp_data / "mrt" / mrtsets.SETS[name]
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return mrtsets.build(path, name)


def test_state_change_bursts_are_of_peers_that_send_no_update(bgp_data: Path) -> None:
    # every state change in this dump is a peer cycling Connect/Active that never
    # comes up: no feature made of updates can carry these incidents
    data = _build(bgp_data, "ris-2002-07-22")
    assert data.reasons["state-change burst"] > 0
    assert data.state_peers and sum(data.state_peers.values()) == int(data.state_changes.sum())
    assert data.silent_state_peers == sorted(data.state_peers)
    assert not set(data.state_peers) & {p for p, v in data.peers.items() if v.any()}


def test_a_table_re_announcement_is_one_peer_at_most_of_the_prefixes(bgp_data: Path) -> None:
    data = _build(bgp_data, "rrc15-2010-02-27")
    assert data.reasons == {"state-change burst": 0, "table-wide re-announcement": 3}
    steps = np.flatnonzero(data.labels)
    top = max(data.peers.values(), key=lambda v: float(v[steps].sum()))
    assert (top[steps] >= mrtsets.TABLE_MIN).all()
