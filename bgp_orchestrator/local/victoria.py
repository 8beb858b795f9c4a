"""Embedded VictoriaMetrics, from the Debian package ``victoria-metrics``.

Keeps the per-session metric series under ``<data_dir>/victoria-metrics`` for
``BGPO_METRICS_RETENTION`` (90 days by default), listening on 127.0.0.1 only.
Without the binary (and without ``BGPO_VICTORIA_METRICS_URL``) the stack keeps
its metric series in Parquet files instead (:mod:`bgp_orchestrator.anomaly.store_parquet`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bgp_orchestrator.errors import ConfigurationError, ServiceUnavailable
from bgp_orchestrator.local.daemon import HOST, DaemonService
from bgp_orchestrator.local.process import wait_until
from bgp_orchestrator.settings import Settings

#: Where the Debian package installs the server.
DEBIAN_BINARY = Path("/usr/bin/victoria-metrics")
#: Series one listing or query may touch on the embedded server.
MAX_SERIES = 5_000_000


def victoria_metrics_binary() -> str | None:
    """The ``victoria-metrics`` executable: the Debian package's, else the first on PATH."""
    if DEBIAN_BINARY.is_file() and os.access(DEBIAN_BINARY, os.X_OK):
        return str(DEBIAN_BINARY)
    return shutil.which("victoria-metrics")


def embedded_victoria_metrics_wanted(settings: Settings) -> bool:
    """True when `bgpo up` should start the embedded VictoriaMetrics."""
    return (
        settings.victoria_metrics_url is None
        and settings.metric_store != "parquet"
        and victoria_metrics_binary() is not None
    )


def metrics_url(settings: Settings) -> str:
    """The VictoriaMetrics the stack uses, or "" for the Parquet fallback."""
    if settings.metric_store == "parquet":
        return ""
    if settings.victoria_metrics_url is not None:
        return settings.victoria_metrics_url
    if victoria_metrics_binary() is not None:
        return EmbeddedVictoriaMetrics(settings).url
    if settings.metric_store == "victoriametrics":
        raise ConfigurationError(
            "victoria-metrics-missing",
            "BGPO_METRIC_STORE=victoriametrics, but BGPO_VICTORIA_METRICS_URL is unset and no "
            "victoria-metrics binary is installed; install the Debian package victoria-metrics "
            "(`./dev` does as root), set BGPO_VICTORIA_METRICS_URL, or use "
            "BGPO_METRIC_STORE=parquet",
            "metric_store",
            settings.metric_store,
        )
    return ""


class EmbeddedVictoriaMetrics(DaemonService):
    name = "victoria-metrics"
    title = "VictoriaMetrics (embedded)"
    port_setting = "BGPO_EMBEDDED_VICTORIA_METRICS_PORT"
    # SIGTERM makes VictoriaMetrics flush its in-memory parts before it exits.
    stop_timeout_s = 30.0
    ready_timeout_s = 30.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.embedded_victoria_metrics_port)
        self.dir = settings.data_dir / "victoria-metrics"
        self.retention = settings.metrics_retention

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        binary = victoria_metrics_binary()
        if binary is None:
            raise ConfigurationError(
                "victoria-metrics-missing",
                "the victoria-metrics binary is not installed; install the Debian package "
                "victoria-metrics, or set BGPO_METRIC_STORE=parquet",
            )
        return [
            binary,
            f"-storageDataPath={self.dir}",
            f"-httpListenAddr={HOST}:{self.port}",
            f"-retentionPeriod={self.retention}",
            # A point written twice (a retried write) is kept once.
            "-dedup.minScrapeInterval=1ms",
            # 80,000 sessions x 4 metrics, plus the fitted bands: the defaults (30,000
            # series per /api/v1/series, 300,000 per query) are for dashboards.
            f"-search.maxSeries={MAX_SERIES}",
            f"-search.maxUniqueTimeseries={MAX_SERIES}",
            f"-search.maxTagValues={MAX_SERIES}",
        ]

    def healthy(self) -> bool:
        """GET /health answers OK."""
        import httpx

        try:
            response = httpx.get(f"{self.url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.text.strip() == "OK"

    def start(self) -> None:
        super().start()
        if not wait_until(self.healthy, self.ready_timeout_s):
            raise ServiceUnavailable(
                "victoria-metrics-start-failed",
                f"{self.title} does not answer OK on {self.url}/health; see {self.log}",
            )

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "data": str(self.dir), "retention": self.retention}
