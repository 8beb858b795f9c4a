"""Lowering the CPU priority reaches every thread of the process, not only the caller."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bgp_orchestrator.local.priority import MAX_NICE, lower_priority, thread_ids

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux only")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def _policy(tid: int) -> int:
    return os.sched_getscheduler(tid)


def in_child_with_a_thread(change: Callable[[], object], read: Callable[[int], int]) -> bool:
    """In a forked child (a priority cannot be raised back, and the test run must not
    slow): start a thread, make ``change`` in this one, and check with ``read`` (of a
    thread id) that the other thread, this one and a thread started afterwards all
    read the same, changed value."""
    started, release = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def other() -> None:
        seen["other_tid"] = threading.get_native_id()
        started.set()
        release.wait(10)

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        thread = threading.Thread(target=other)
        thread.start()
        started.wait(10)
        before = read(seen["other_tid"])
        change()  # made in this thread; the other thread must change too
        later: dict[str, int] = {}
        starter = threading.Thread(target=lambda: later.update(v=read(threading.get_native_id())))
        starter.start()
        starter.join()
        after = read(seen["other_tid"])
        ok = after != before and after == read(threading.get_native_id()) == later["v"]
        release.set()
        thread.join()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) == 0


def test_every_thread_and_later_threads_get_the_lower_priority() -> None:
    if _nice(threading.get_native_id()) >= MAX_NICE:
        pytest.skip("already at the lowest priority")
    assert in_child_with_a_thread(lambda: lower_priority(3), _nice)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="no SCHED_IDLE")
def test_idle_puts_every_thread_and_later_threads_in_the_idle_class() -> None:
    if _policy(0) == os.SCHED_IDLE:
        pytest.skip("already in the idle class")
    assert in_child_with_a_thread(lambda: lower_priority(0, idle=True), _policy)


def test_nothing_changes_for_zero_and_thread_ids_include_this_thread() -> None:
    assert lower_priority(0) == 0
    assert threading.get_native_id() in thread_ids()
