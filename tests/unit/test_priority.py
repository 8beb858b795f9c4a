"""Lowering the CPU priority reaches every thread of the process, not only the caller."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bgp_orchestrator.local.priority import MAX_NICE, lower_priority, thread_ids

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux only")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_every_thread_and_later_threads_get_the_lower_priority() -> None:
    started = threading.Event()
    release = threading.Event()
    seen: dict[str, int] = {}

    def other() -> None:
        seen["other_tid"] = threading.get_native_id()
        started.set()
        release.wait(10)

    # Runs in a thread of its own, so the test process keeps its priority.
    def body() -> None:
        thread = threading.Thread(target=other)
        thread.start()
        started.wait(10)
        before = _nice(seen["other_tid"])
        seen["before"] = before
        # The call is made in this thread; the other thread must be lowered too.
        lower_priority(3)
        seen["other_after"] = _nice(seen["other_tid"])
        seen["caller_after"] = _nice(threading.get_native_id())
        child: dict[str, int] = {}
        later = threading.Thread(target=lambda: child.update(nice=_nice(threading.get_native_id())))
        later.start()
        later.join()
        seen["later"] = child["nice"]
        release.set()
        thread.join()

    # A separate process: niceness cannot be raised back, and the test run must not slow.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        body()
        ok = (
            seen["other_after"] == min(MAX_NICE, seen["before"] + 3)
            and seen["caller_after"] == seen["other_after"]
            and seen["later"] == seen["caller_after"]
        )
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_nothing_changes_for_zero_and_thread_ids_include_this_thread() -> None:
    assert lower_priority(0) == 0
    assert threading.get_native_id() in thread_ids()
