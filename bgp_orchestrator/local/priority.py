"""Lowering a process's CPU priority, every thread of it.

On Linux niceness belongs to a thread, not to a process: ``os.nice`` in one thread
leaves the others (an asyncio loop's thread, a thread pool's workers, the Kafka
client's) at the priority they had, so a replica that "lowered its priority" that
way went on competing for the CPU at full weight. :func:`lower_priority` raises the
niceness of every thread the process has; threads started afterwards inherit it
from the thread that starts them. With ``idle`` it also puts them in ``SCHED_IDLE``.
Both weigh only within the process's scheduling group (an autogroup: the session
it was started in; Ray's workers lead their process groups, so they cannot leave
it): against an ingest command started from a terminal they weigh nothing, which
is why the session stats also pace themselves (:mod:`bgp_orchestrator.stream.pacing`).
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


def lower_priority(by: int, *, idle: bool = False) -> int:
    """Raise the niceness of every thread of this process by ``by`` (at most to 19) and,
    with ``idle``, put them in Linux's ``SCHED_IDLE`` class; returns how many threads
    were changed. A thread that ends meanwhile is skipped.

    A niced thread at 19 still takes about a third of a core from threads at 15 beside
    it; ``SCHED_IDLE`` threads get a few percent when others of the group want the
    CPU, and all of it when they do not. An unprivileged process may always choose it."""
    if by <= 0 and not idle:
        return 0
    use_idle = idle and hasattr(os, "SCHED_IDLE")
    changed = 0
    for tid in thread_ids():
        try:
            done = False
            current = os.getpriority(os.PRIO_PROCESS, tid)
            target = min(MAX_NICE, current + max(0, by))
            if target != current:
                os.setpriority(os.PRIO_PROCESS, tid, target)
                done = True
            if use_idle and os.sched_getscheduler(tid) != os.SCHED_IDLE:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                done = True
            changed += done
        except (ProcessLookupError, PermissionError):
            continue
    return changed

