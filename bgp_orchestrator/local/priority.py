"""Lowering a process's CPU priority, every thread of it.

On Linux niceness belongs to a thread, not to a process: ``os.nice`` in one thread
leaves the others (an asyncio loop's thread, a thread pool's workers, the Kafka
client's) at the priority they had, so a replica that "lowered its priority" that
way went on competing for the CPU at full weight. :func:`lower_priority` raises the
niceness of every thread the process has; threads started afterwards inherit it
from the thread that starts them.

Niceness weighs only within the process's scheduling group: with Linux autogroups
(on by default) a session is a group, and Ray's workers, which lead their process
groups, cannot leave Ray's. Against an ingest command started from a terminal it
weighs nothing (measured: the session-stats replicas took 0.7 of a core from a
replay, niced to 19 or even in SCHED_IDLE, which also risks starving a replica past
its health check), which is why session stats also pace themselves while the CPU
is contended (:mod:`bgp_orchestrator.stream.pacing`).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NICE = 19


def thread_ids() -> list[int]:
    """The ids of this process's threads (Linux: ``/proc/self/task``), else the process's."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return [os.getpid()]
    return sorted(int(entry.name) for entry in tasks.iterdir() if entry.name.isdigit())


def lower_priority(by: int) -> int:
    """Raise the niceness of every thread of this process by ``by`` (at most to 19);
    returns how many threads were changed. A thread that ends meanwhile is skipped."""
    if by <= 0:
        return 0
    changed = 0
    for tid in thread_ids():
        try:
            current = os.getpriority(os.PRIO_PROCESS, tid)
            target = min(MAX_NICE, current + by)
            if target != current:
                os.setpriority(os.PRIO_PROCESS, tid, target)
                changed += 1
        except (ProcessLookupError, PermissionError):
            continue
    return changed
