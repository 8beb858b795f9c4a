"""A local service run as one detached process that listens on a TCP port."""

from __future__ import annotations

from abc import ABC, abstractmethod

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.local.ports import ensure_free, port_open
from bgp_orchestrator.local.process import PidFile, spawn_detached, terminate, wait_until
from bgp_orchestrator.settings import Settings

HOST = "127.0.0.1"


class DaemonService(ABC):
    """Start, find and stop one daemon; subclasses give its command line and URL."""

    name: str
    title: str
    #: The setting that chooses the port, named in "port taken" errors.
    port_setting: str
    stop_timeout_s: float = 10.0

    def __init__(self, settings: Settings, port: int) -> None:
        self.port = port
        self.log = settings.run_dir / f"{self.name}.log"
        self.pidfile = PidFile(settings.run_dir / f"{self.name}.pid")

    @abstractmethod
    def argv(self) -> list[str]:
        """The daemon's command line (runs in the foreground; we detach it)."""

    @property
    @abstractmethod
    def url(self) -> str: ...

    def prepare(self) -> None:
        """Create what the daemon needs before it starts (nothing by default)."""
        return None

    def pid(self) -> int | None:
        proc = self.pidfile.process()
        return proc.pid if proc is not None else None

    def running(self) -> bool:
        return self.pid() is not None and port_open(HOST, self.port)

    def start(self) -> None:
        if self.running():
            return
        ensure_free(HOST, self.port, self.title, self.port_setting)
        self.prepare()
        proc = spawn_detached(self.argv(), self.log)
        self.pidfile.write(proc.pid)
        code = f"{self.name}-start-failed"
        if not wait_until(lambda: port_open(HOST, self.port) or proc.poll() is not None, 20):
            raise ServiceUnavailable(
                code, f"{self.title} did not open port {self.port}; see {self.log}"
            )
        if proc.poll() is not None:
            self.pidfile.remove()
            raise ServiceUnavailable(
                code, f"{self.title} exited with status {proc.returncode}; see {self.log}"
            )

    def stop(self) -> None:
        proc = self.pidfile.process()
        if proc is not None:
            terminate([proc], timeout_s=self.stop_timeout_s)
        self.pidfile.remove()

    def describe(self) -> dict[str, str]:
        return {"url": self.url, "log": str(self.log)}
