"""Pacing a consume loop's CPU use while the machine's CPU is contended.

Session stats can lag a burst by minutes; the detectors and the ingest commands on
the same cores may not. Niceness and ``SCHED_IDLE`` only weigh threads within one
scheduling group, and with Linux autogroups (on by default) the Ray processes form
one group, an ingest command started from a terminal another: the session-stats
replicas went on taking about a core's share during a replay, whatever their
priority. :class:`CpuPacer` makes the loop itself yield: while the kernel reports
CPU pressure (``/proc/pressure/cpu``, the share of time some runnable task waited for
a CPU), the process keeps to ``share`` of one core by pausing between turns; when
nothing waits, it runs at full speed and catches up. Where there is no pressure file
(not Linux, or a kernel without PSI), the share is a plain cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

PRESSURE = Path("/proc/pressure/cpu")


def cpu_pressure(path: Path = PRESSURE) -> float | None:
    """``some avg10`` of a PSI file: % of the last 10 s some task waited for a CPU."""
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    for field in first.split()[1:]:
        key, _, value = field.partition("=")
        if key == "avg10":
            try:
                return float(value)
            except ValueError:
                return None
    return None


class CpuPacer:
    """See the module docstring. One per process: its loops call :meth:`pace` between
    turns and between slices of long ones, and the process's CPU time (all threads) is
    what is kept: each call owes ``cpu spent / share - time passed`` since the last
    (a debt carried on, a credit of at most ``credit_s``) and pauses it off, at most
    ``max_pause_s`` at a time."""

    def __init__(
        self,
        share: float,
        *,
        pressure_pct: float = 10.0,
        pressure: Callable[[], float | None] = cpu_pressure,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        max_pause_s: float = 2.0,
        credit_s: float = 1.0,
        max_debt_s: float = 30.0,
    ) -> None:
        if share <= 0:
            raise ValueError(f"share must be positive, got {share}")
        self.share = share
        self.pressure_pct = pressure_pct
        self._pressure = pressure
        self._cpu = cpu
        self._clock = clock
        self.max_pause_s = max_pause_s
        self.credit_s = credit_s
        self.max_debt_s = max_debt_s
        self._at = clock()
        self._used = cpu()
        self._debt = 0.0
        self._checked_at = -float("inf")
        self._contended = False
        self.paused_s = 0.0  # in all
        self.pauses = 0

    def contended(self) -> bool:
        """Whether the CPU is contended now (the pressure file read at most once a second)."""
        now = self._clock()
        if now - self._checked_at >= 1.0:
            self._checked_at = now
            reading = self._pressure()
            self._contended = reading is None or reading >= self.pressure_pct
        return self._contended

    def due(self) -> float:
        """Seconds to pause now to keep the share (0: none)."""
        now, used = self._clock(), self._cpu()
        owed = (used - self._used) / self.share - (now - self._at)
        self._at, self._used = now, used
        if not self.contended():
            self._debt = 0.0
            return 0.0
        self._debt = min(self.max_debt_s, max(-self.credit_s, self._debt + owed))
        return min(self.max_pause_s, self._debt) if self._debt > 0 else 0.0

    async def pace(self) -> float:
        """Pause as long as :meth:`due` says; returns the seconds paused."""
        pause = self.due()
        if pause > 0:
            self.pauses += 1
            self.paused_s += pause
            await asyncio.sleep(pause)
        return pause
