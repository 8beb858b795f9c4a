"""The CPU pacer keeps a process to its share of a core while the CPU is contended,
and lets it run at full speed when nothing waits for a CPU."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bgp_orchestrator.stream.pacing import CpuPacer, cpu_pressure


class Machine:
    """A clock, the process's CPU time and the pressure reading, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 10.0
        self.pressure: float | None = 50.0

    def pacer(self, share: float = 0.25) -> CpuPacer:
        return CpuPacer(
            share,
            pressure_pct=10.0,
            pressure=lambda: self.pressure,
            cpu=lambda: self.cpu,
            clock=lambda: self.now,
        )

    def work(self, seconds: float) -> None:
        self.now += seconds
        self.cpu += seconds


def test_contended_the_share_is_kept_by_pausing() -> None:
    m = Machine()
    pacer = m.pacer(0.25)
    m.work(0.1)  # 0.1 CPU-s in 0.1 s: owes 0.1 / 0.25 - 0.1 = 0.3 s
    assert pacer.due() == pytest.approx(0.3)
    m.now += 0.3  # paused it off
    assert pacer.due() == pytest.approx(0.0, abs=1e-9)
    m.work(3.0)  # a long turn: owes 9 s, paid off at most 2 s a call
    assert pacer.due() == pytest.approx(2.0)
    for _ in range(3):
        m.now += 2.0
        assert pacer.due() == pytest.approx(2.0)
    m.now += 2.0
    assert pacer.due() == pytest.approx(1.0)
    m.now += 1.0
    assert pacer.due() == pytest.approx(0.0, abs=1e-9)


def test_idle_time_banks_only_a_little_credit() -> None:
    m = Machine()
    pacer = m.pacer(0.5)
    m.now += 60.0  # a minute with nothing to do
    assert pacer.due() == 0.0
    m.work(1.0)  # owes 1 / 0.5 - 1 = 1 s, less the 1 s of credit
    assert pacer.due() == pytest.approx(0.0, abs=1e-9)
    m.work(1.0)
    assert pacer.due() == pytest.approx(1.0)


def test_quiet_machine_no_pause_and_no_pressure_file_is_a_plain_cap() -> None:
    m = Machine()
    m.pressure = 2.0
    pacer = m.pacer(0.25)
    m.work(0.5)
    assert pacer.due() == 0.0
    m.pressure = None  # no PSI: always paced
    m.now += 1.0  # the reading is refreshed once a second
    assert pacer.due() == 0.0  # a second of nothing: a second of credit
    m.work(0.5)  # owes 0.5 / 0.25 - 0.5 = 1.5, less the credit
    assert pacer.due() == pytest.approx(0.5)


def test_pace_sleeps_what_is_due_and_counts_it() -> None:
    m = Machine()
    pacer = CpuPacer(
        0.5, pressure=lambda: 90.0, cpu=lambda: m.cpu, clock=lambda: m.now, max_pause_s=0.01
    )
    m.work(0.5)
    assert asyncio.run(pacer.pace()) == pytest.approx(0.01)
    assert pacer.pauses == 1 and pacer.paused_s == pytest.approx(0.01)
    with pytest.raises(ValueError, match="share"):
        CpuPacer(0)


def test_pressure_file_is_read_and_bad_ones_give_none(tmp_path: Path) -> None:
    good = tmp_path / "cpu"
    good.write_text(
        "some avg10=12.50 avg60=3.00 avg300=1.00 total=1\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    assert cpu_pressure(good) == 12.5
    bad = tmp_path / "bad"
    bad.write_text("some avg10=x\n")
    assert cpu_pressure(bad) is None
    assert cpu_pressure(tmp_path / "missing") is None
