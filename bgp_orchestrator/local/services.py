"""Which services the stack uses: configured servers, or embedded ones started here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bgp_orchestrator.local.kafka import EmbeddedKafka
from bgp_orchestrator.local.postgres import EmbeddedPostgres
from bgp_orchestrator.local.redis import EmbeddedRedis
from bgp_orchestrator.local.victoria import (
    EmbeddedVictoriaMetrics,
    embedded_victoria_metrics_wanted,
    metrics_url,
)
from bgp_orchestrator.settings import Settings


class EmbeddedService(Protocol):
    name: str
    title: str

    @property
    def url(self) -> str: ...

    def pid(self) -> int | None: ...

    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def describe(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Endpoints:
    """The effective URLs of the backing services (secrets included: do not print)."""

    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str
    #: VictoriaMetrics of the metric series; "" = the Parquet fallback.
    metrics_url: str

    def as_env(self) -> dict[str, str]:
        env = {
            "BGPO_DATABASE_URL": self.database_url,
            "BGPO_REDIS_URL": self.redis_url,
            "BGPO_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
        }
        # Ray jobs and Serve replicas open the same metric store as `bgpo up` chose.
        if self.metrics_url:
            env["BGPO_VICTORIA_METRICS_URL"] = self.metrics_url
        else:
            env["BGPO_METRIC_STORE"] = "parquet"
        return env


def embedded_services(settings: Settings) -> list[EmbeddedService]:
    """The embedded services this configuration needs, in start order."""
    services: list[EmbeddedService] = []
    if settings.database_url is None:
        services.append(EmbeddedPostgres(settings))
    if settings.redis_url is None:
        services.append(EmbeddedRedis(settings))
    if settings.kafka_bootstrap_servers is None:
        services.append(EmbeddedKafka(settings))
    if embedded_victoria_metrics_wanted(settings):
        services.append(EmbeddedVictoriaMetrics(settings))
    return services


def endpoints(settings: Settings) -> Endpoints:
    return Endpoints(
        database_url=(
            settings.database_url.get_secret_value()
            if settings.database_url
            else EmbeddedPostgres(settings).url
        ),
        redis_url=(
            settings.redis_url.get_secret_value()
            if settings.redis_url
            else EmbeddedRedis(settings).url
        ),
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers or EmbeddedKafka(settings).url,
        metrics_url=metrics_url(settings),
    )


def redact(url: str) -> str:
    """A URL with its password replaced, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
