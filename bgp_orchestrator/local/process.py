"""Detached child processes tracked by pid files (pid + start time, so reuse is detected)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class PidFile:
    path: Path

    def write(self, pid: int) -> None:
        created = psutil.Process(pid).create_time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"pid": pid, "create_time": created}))

    def process(self) -> psutil.Process | None:
        """The live process the file names, or None (and the stale file removed)."""
        try:
            data = json.loads(self.path.read_text())
            proc = psutil.Process(int(data["pid"]))
            if abs(proc.create_time() - float(data["create_time"])) > 1.0:
                raise psutil.NoSuchProcess(int(data["pid"]))
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(int(data["pid"]))
            return proc
        except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError):
            return None
        except psutil.Error:
            self.path.unlink(missing_ok=True)
            return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def spawn_detached(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def terminate(procs: Sequence[psutil.Process], timeout_s: float = 10.0) -> list[psutil.Process]:
    """SIGTERM, wait, then SIGKILL what is left; returns the processes that had to be killed."""
    alive = []
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
            alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    _, still = psutil.wait_procs(alive, timeout=timeout_s)
    for proc in still:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(still, timeout=5)
    return list(still)


def processes_mentioning(marker: str) -> list[psutil.Process]:
    """Processes (other than this one) whose command line contains ``marker``."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = proc.info.get("cmdline") or []
        except psutil.Error:
            continue
        if proc.pid != me and any(marker in part for part in cmdline):
            found.append(proc)
    return found


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or the time is up."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
