"""A second stack for a benchmark: `bgpo up` in a temporary data directory on
free ports, driven through the CLI and `ray job submit` like an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bgp_orchestrator.local.ports import free_ports_env
from bgp_orchestrator.settings import Settings


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BGPO_")}
        ports = free_ports_env()
        self.env.update(ports, BGPO_DATA_DIR=str(data_dir), RAY_AUTH_MODE="token")
        self.settings = Settings(
            data_dir=data_dir,
            **{n.removeprefix("BGPO_").lower(): int(v) for n, v in ports.items()},
        )

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
