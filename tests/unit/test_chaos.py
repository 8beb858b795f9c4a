"""The fault-injection suite's pure parts: its measurements, the replay's fresh
incidents, the refusal of experiments that need embedded services."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.chaos import measure
from bgp_orchestrator.chaos.experiments import EXPERIMENTS
from bgp_orchestrator.chaos.faults import embedded
from bgp_orchestrator.chaos.runner import Result, _stream_start
from bgp_orchestrator.cli.main import app
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.stream import Simulation
from bgp_orchestrator.simulation.world import build


def test_behind_lists_what_a_group_has_not_committed() -> None:
    assert measure.behind({0: 5, 1: 9}, {0: 5, 1: 12, 2: 3}) == {1: (9, 12), 2: (0, 3)}
    assert measure.behind({0: 5}, {0: 5}) == {}


def test_session_events_count_once_per_partition_in_the_log() -> None:
    route = Update(Kind.ANNOUNCE, 1.0, "10.0.0.1", 64500, "11.0.0.0/24", (64500,))
    down = Update(Kind.PEER_DOWN, 1.0, "10.0.0.1", 64500)
    assert measure.log_updates([route, down], 8) == 1 + 8


def test_incidents_avoid_the_prefixes_of_an_earlier_run() -> None:
    world = build(seed=3, peers=200, prefixes=500)
    first = Simulation(world, total=2000, incidents=20, seed=1)
    used = frozenset(i.prefix for i in first.plan()) | frozenset(e.prefix for e in first.expected())
    second = Simulation(world, total=2000, incidents=20, seed=1, avoid=used)
    again = {i.prefix for i in second.plan()} | {e.prefix for e in second.expected()}
    assert not again & used
    assert {i.kind for i in second.plan()} == {i.kind for i in first.plan()}


def test_result_holds_only_without_undocumented_loss() -> None:
    ok = Result("broker-restart", 0, 7.0, 391, 0, 0, lost_as_documented={"updates": 391})
    assert ok.held and ok.undocumented_loss == 0
    assert not Result("broker-restart", 0, 7.0, 392, 0, 0, lost_as_documented={"updates": 391}).held
    assert not Result("detector-kill", 0, 31.0, 0, 0, 0).held
    assert not Result("detector-kill", 0, None, 0, 0, 0).held
    line = Result("postgres-stop", 0, 3.21, 0, 0, 0).as_json()
    assert list(line)[:6] == [
        "experiment", "failed_requests", "recovery_s", "updates_lost",
        "duplicate_conflicts", "conflicts_missed",
    ]  # fmt: skip
    assert line["recovery_s"] == 3.2


def test_window_counts_read_the_stored_windows(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "session_id": ["rrc00|10.0.0.1", "rrc00|10.0.0.2", "other|192.0.2.1"],
            "announcements": [3.0, 4.0, 100.0],
            "withdrawals": [1.0, 0.0, 100.0],
        }
    )
    frame.to_parquet(tmp_path / "live-600-bgpo-session-stats.parquet")
    got = measure.stored_window_counts(tmp_path, [300, 600], {"rrc00|10.0.0.1", "rrc00|10.0.0.2"})
    assert got == {600: 8}


def test_window_counts_read_compacted_windows_once(tmp_path: Path) -> None:
    end = pd.Timestamp(900, unit="s", tz="UTC")
    frame = pd.DataFrame(
        {
            "session_id": ["rrc00|10.0.0.1", "rrc00|10.0.0.1"],
            "event_timestamp": [end, end + pd.Timedelta(seconds=300)],
            "announcements": [5.0, 50.0],
            "withdrawals": [1.0, 10.0],
        }
    )
    frame.to_parquet(tmp_path / "compact-0-3600-merge-p0.parquet")
    # a compaction under way: the window's own file of the same writer still there
    live = frame.iloc[:1].drop(columns="event_timestamp")
    live.to_parquet(tmp_path / "live-600-merge-p0.parquet")
    got = measure.stored_window_counts(tmp_path, [600], {"rrc00|10.0.0.1"}, window_s=300)
    assert got == {600: 6}


def test_a_fast_stream_starts_after_the_session_stats_event_time(tmp_path: Path) -> None:
    import json
    import time

    settings = Settings(data_dir=tmp_path)
    slow, fast = EXPERIMENTS["detector-kill"], EXPERIMENTS["session-stats-kill"]
    now = time.time()
    start, _, _ = _stream_start(settings, slow)
    assert abs(start - now) < 5
    clock = tmp_path / "chaos" / "stream-clock.json"
    clock.write_text(json.dumps({"stream_end": now + 900, "at": now}))
    start, ahead, _ = _stream_start(settings, fast)
    window = settings.flap_window_s
    assert start % window == 0 and start >= ahead + window >= now + 900


def test_stopping_a_configured_service_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db.example:5432/bgpo")
    with pytest.raises(ConfigurationError) as caught:
        embedded(settings, "postgres")
    assert caught.value.code == "chaos-needs-embedded"
    assert "BGPO_DATABASE_URL" in caught.value.message


def test_cli_lists_experiments_and_refuses_unknown_ones() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["chaos", "list"])
    assert listed.exit_code == 0
    for name in EXPERIMENTS:
        assert name in listed.output
    bad = runner.invoke(app, ["chaos", "run", "nope"])
    assert bad.exit_code == 2
