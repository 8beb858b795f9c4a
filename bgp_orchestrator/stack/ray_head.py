"""The local Ray head that `bgpo up` starts (when BGPO_RAY_ADDRESS is not set).

`ray start` is run in a new session; every process of the head (GCS, raylet,
dashboard, workers, Serve's HAProxy) inherits that session id, which is how
`bgpo down` finds them all, and only them, without `ray stop` killing other
Ray clusters on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import psutil

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.local.ports import ensure_free, port_open
from bgp_orchestrator.local.process import spawn_detached, terminate
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack import ray_auth
from bgp_orchestrator.stack.serve_config import INGRESS_ENV

# Ray binds these ports on every interface.
ANY_HOST = "0.0.0.0"  # noqa: S104


def ray_executable() -> str:
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise ServiceUnavailable("ray-missing", "the `ray` command is not installed")
    return found


class LocalRayHead:
    title = "Ray head (local)"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.session_dir = settings.ray_session_dir
        self.state_file = settings.run_dir / "ray-head.json"
        self.log = settings.run_dir / "ray-start.log"

    # --- state ------------------------------------------------------------------

    def _session_id(self) -> int | None:
        try:
            data = json.loads(self.state_file.read_text())
            return int(data["sid"])
        except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError):
            return None

    def processes(self) -> list[psutil.Process]:
        """Every live process of this head (same session id), plus strays in its temp dir."""
        sid = self._session_id()
        found: dict[int, psutil.Process] = {}
        markers = (str(self.session_dir), str(self.settings.haproxy_dir))
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmdline = proc.info.get("cmdline") or []
                same_session = sid is not None and os.getsid(proc.pid) == sid
                if same_session or any(m in part for part in cmdline for m in markers):
                    found[proc.pid] = proc
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        found.pop(os.getpid(), None)
        return list(found.values())

    def running(self) -> bool:
        return port_open("127.0.0.1", self.settings.ray_port) and bool(self.processes())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.ray_port}"

    # --- start / stop ------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        s = self.settings
        haproxy_dir = s.haproxy_dir
        env = dict(os.environ)
        # Jobs submitted with `ray job submit` (training, materialization) find the
        # stack's services and data directory without extra flags.
        from bgp_orchestrator.local.services import endpoints
        from bgp_orchestrator.stack.serve_config import configured_env

        env.update(configured_env(s))
        env.update(endpoints(s).as_env())
        env["BGPO_DATA_DIR"] = str(s.data_dir)
        # `python` in a job's entrypoint is this environment's interpreter.
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", os.defpath)])
        env.update(INGRESS_ENV[s.serve_ingress])
        for name in ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)  # set by an imported library for its own process only
        env["RAY_AUTH_MODE"] = s.ray_auth_mode
        if s.ray_auth_mode == "token":
            ray_auth.ensure_token()
        env.update(
            {
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy_dir / "haproxy.cfg"),
                "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy_dir / "admin.sock"),
                "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy_dir),
                "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy_dir / "server-state"),
                "RAY_SERVE_HAPROXY_STATS_PORT": str(s.haproxy_stats_port),
                "RAY_SERVE_HAPROXY_METRICS_PORT": str(s.haproxy_metrics_port),
            }
        )
        return env

    def check_ports(self) -> None:
        s = self.settings
        checks = [
            (ANY_HOST, s.ray_port, "the Ray head (GCS)", "BGPO_RAY_PORT"),
            (
                s.ray_dashboard_host,
                s.ray_dashboard_port,
                "the Ray dashboard",
                "BGPO_RAY_DASHBOARD_PORT",
            ),
            (
                ANY_HOST,
                s.ray_client_server_port,
                "the Ray client server",
                "BGPO_RAY_CLIENT_SERVER_PORT",
            ),
            (
                ANY_HOST,
                s.ray_dashboard_agent_port,
                "the Ray dashboard agent",
                "BGPO_RAY_DASHBOARD_AGENT_PORT",
            ),
            (s.api_host, s.api_port, "the API (Serve ingress)", "BGPO_API_PORT"),
        ]
        if s.serve_ingress == "haproxy":
            checks += [
                (ANY_HOST, s.haproxy_stats_port, "HAProxy stats", "BGPO_HAPROXY_STATS_PORT"),
                (ANY_HOST, s.haproxy_metrics_port, "HAProxy metrics", "BGPO_HAPROXY_METRICS_PORT"),
            ]
        for host, port, what, setting in checks:
            ensure_free(host, port, what, setting)

    def start(self) -> None:
        if self.running():
            return
        # A head that half-died leaves processes behind; clear them first.
        self.stop()
        self.check_ports()
        s = self.settings
        self.session_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            ray_executable(),
            "start",
            "--head",
            "--port",
            str(s.ray_port),
            "--dashboard-host",
            s.ray_dashboard_host,
            "--dashboard-port",
            str(s.ray_dashboard_port),
            "--ray-client-server-port",
            str(s.ray_client_server_port),
            "--dashboard-agent-listen-port",
            str(s.ray_dashboard_agent_port),
            "--temp-dir",
            str(self.session_dir),
            "--disable-usage-stats",
            "--include-dashboard",
            "true",
        ]
        argv += ["--num-cpus", str(s.ray_num_cpus or max(8, 4 * (os.cpu_count() or 1)))]
        self.log.write_text("")
        proc = spawn_detached(argv, self.log, env=self.environment())
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"sid": proc.pid, "address": self.address}))
        try:
            code = proc.wait(timeout=180)
        except Exception:
            code = None
        if code != 0:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            self.stop()
            raise ServiceUnavailable(
                "ray-start-failed",
                f"`ray start --head` failed (exit {code}); last lines of {self.log}:\n{tail}",
            )

    def stop(self, timeout_s: float = 15.0) -> int:
        """Terminate every process of the head; returns how many there were.

        In two stages, as `ray stop` does: everything but the GCS first (the
        GCS waits for its clients to leave before it exits on SIGTERM), then
        the GCS; whatever is left after ``timeout_s`` is killed.
        """
        procs = self.processes()

        def is_gcs(proc: psutil.Process) -> bool:
            try:
                return proc.name() == "gcs_server"
            except psutil.Error:
                return False

        terminate([p for p in procs if not is_gcs(p)], timeout_s=timeout_s)
        terminate([p for p in procs if is_gcs(p)], timeout_s=timeout_s)
        terminate(self.processes(), timeout_s=5)
        self.state_file.unlink(missing_ok=True)
        return len(procs)
