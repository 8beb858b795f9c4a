"""A second stack for a benchmark: `bgpo up` in a temporary data directory on
free ports, driven through the CLI and `ray job submit` like an operator would.

Every process the stack starts (the `bgpo` commands, the Ray head and so the Serve
replicas and jobs) runs this checkout's code: its root leads PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bgp_orchestrator.local.ports import free_ports_env
from bgp_orchestrator.local.services import Endpoints, endpoints
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack import ray_auth

CHECKOUT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BGPO_")}
        ports = free_ports_env()
        self.env.update(ports, BGPO_DATA_DIR=str(data_dir), RAY_AUTH_MODE="token")
        paths = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(CHECKOUT), *(p for p in paths if Path(p).resolve() != CHECKOUT)]
        )
        self.settings = Settings(
            data_dir=data_dir,
            **{n.removeprefix("BGPO_").lower(): int(v) for n, v in ports.items()},
        )

    @property
    def endpoints(self) -> Endpoints:
        """Where the stack's PostgreSQL, Redis and Kafka listen."""
        return endpoints(self.settings)

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.settings.ray_port}"

    @property
    def ray_logs(self) -> Path:
        """The Ray session's log folder (Serve controller and replica logs under serve/)."""
        return self.settings.ray_session_dir / "session_latest" / "logs"

    @staticmethod
    def ray_headers() -> dict[str, str]:
        """The bearer token the stack's Ray dashboard asks for (token auth)."""
        return ray_auth.headers()

    def run(self, *argv: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv[:6])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def bgpo(self, *args: str) -> None:
        self.run(sys.executable, "-m", "bgp_orchestrator.cli.main", *args, timeout=300)

    def submit(self, *job: str) -> tuple[float, str]:
        ray = str(Path(sys.executable).parent / "ray")
        started = time.perf_counter()
        result = self.run(
            ray, "job", "submit", "--address", self.settings.dashboard_url, "--",
            "python", "-m", *job,
        )  # fmt: skip
        return time.perf_counter() - started, result.stdout
