import sys
from pathlib import Path

from bgp_orchestrator.local.process import PidFile, spawn_detached, terminate


def test_pidfile_tracks_a_detached_process_and_forgets_it_when_dead(tmp_path: Path) -> None:
    proc = spawn_detached([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "x.log")
    pidfile = PidFile(tmp_path / "x.pid")
    pidfile.write(proc.pid)
    live = pidfile.process()
    assert live is not None and live.pid == proc.pid
    assert terminate([live], timeout_s=5) == []
    proc.wait(5)
    assert pidfile.process() is None
    assert not pidfile.path.exists()


def test_pidfile_detects_pid_reuse(tmp_path: Path) -> None:
    pidfile = PidFile(tmp_path / "x.pid")
    pidfile.path.write_text('{"pid": 1, "create_time": 0}')
    assert pidfile.process() is None
