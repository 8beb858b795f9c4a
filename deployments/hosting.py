"""One Serve wrapper for every background service: its task, ``check_health``, metrics, shutdown.

A deployment that hosts a core :class:`~bgp_orchestrator.service.Service`
(detector, session stats, alert dispatcher, job scheduler) subclasses
:class:`ServiceHost` and calls :meth:`ServiceHost.host` from its
``__init__``. The host

* runs ``service.run(stop)`` as a background task on the replica's loop;
* answers Serve's ``check_health``: it fails when the task ended (the worker
  died) or when the service reports problems (a stalled partition, a loop
  that has not turned), so Serve replaces a wedged replica instead of one
  whose loop is merely busy;
* exports the service's counters and its partitions' lag and time since
  progress as Ray metrics (scraped with the cluster's) every few seconds;
* stops gracefully when Serve retires the replica: ``stop`` set, the task
  awaited (it drains and commits what it holds), then ``aclose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from ray.util import metrics

from bgp_orchestrator import log_redaction
from bgp_orchestrator.service import Service

log = logging.getLogger(__name__)

METRICS_INTERVAL_S = 5.0

#: The dead-letter counter every stream consumer exports (``labelled`` of ServiceMetrics).
DEAD_LETTERS = {
    "dead_letters": ("bgpo_dead_letters", "Records sent to the dead-letter topic", "reason")
}


class ServiceMetrics:
    """Mirrors a service's ``stats()`` into Ray metrics.

    ``counters`` maps a key of the stats to (metric name, description); its values
    only grow, and the difference since the last export is added. Dicts of counts
    under ``labelled`` keys (e.g. dead letters per reason) become one counter with a
    tag. The consume loop's partitions become two gauges per partition.
    """

    def __init__(
        self,
        service: str,
        counters: Mapping[str, tuple[str, str]] | None = None,
        labelled: Mapping[str, tuple[str, str, str]] | None = None,
    ) -> None:
        self.tags = {"service": service}
        self._counters = {
            key: metrics.Counter(name, description, tag_keys=("service",))
            for key, (name, description) in (counters or {}).items()
        }
        self._labelled = {
            key: (metrics.Counter(name, description, tag_keys=("service", tag)), tag)
            for key, (name, description, tag) in (labelled or {}).items()
        }
        self._lag = metrics.Gauge(
            "bgpo_consumer_lag_records",
            "Records of a partition after its committed offset",
            tag_keys=("service", "partition"),
        )
        self._since = metrics.Gauge(
            "bgpo_consumer_seconds_since_progress",
            "Seconds since a partition's committed offset last moved",
            tag_keys=("service", "partition"),
        )
        self._last: dict[str, Any] = {}

    def __call__(self, stats: Mapping[str, Any]) -> None:
        for key, counter in self._counters.items():
            delta = float(stats.get(key, 0) or 0) - float(self._last.get(key, 0) or 0)
            if delta > 0:  # Ray counters refuse increments of zero
                counter.inc(delta, tags=self.tags)
        for key, (counter, tag) in self._labelled.items():
            before = self._last.get(key) or {}
            for label, count in (stats.get(key) or {}).items():
                delta = count - before.get(label, 0)
                if delta > 0:
                    counter.inc(delta, tags={**self.tags, tag: str(label)})
        partitions = (stats.get("loop") or {}).get("partitions") or {}
        for partition, progress in partitions.items():
            tags = {**self.tags, "partition": str(partition)}
            self._lag.set(progress["lag"], tags=tags)
            self._since.set(progress["since_progress_s"], tags=tags)
        self._last = {
            key: (dict(value) if isinstance(value, Mapping) else value)
            for key, value in stats.items()
            if key in self._counters or key in self._labelled
        }


class ServiceHost:
    """Base of the deployments that host one background service (no HTTP)."""

    stop_timeout_s = 15.0

    def host(self, service: Service, exporter: ServiceMetrics | None = None) -> None:
        log_redaction.install()  # no token, key or password reaches the replica's logs
        self.service = service
        self._stop = asyncio.Event()
        self._exporter = exporter
        loop = asyncio.get_event_loop()
        self._task = loop.create_task(service.run(self._stop), name=service.name)
        self._metrics_task = loop.create_task(self._export()) if exporter is not None else None

    async def _export(self) -> None:
        assert self._exporter is not None
        while not self._stop.is_set():
            await asyncio.sleep(METRICS_INTERVAL_S)
            try:
                self._exporter(self.service.stats())
            except Exception:  # metrics must never stop the service
                log.exception("%s: exporting metrics failed", self.service.name)

    async def check_health(self) -> None:
        if self._task.done():
            error = None if self._task.cancelled() else self._task.exception()
            raise RuntimeError(f"{self.service.name} stopped: {error!r}")
        problems = self.service.health()
        if problems:
            raise RuntimeError(f"{self.service.name}: " + "; ".join(problems))

    async def stats(self) -> dict[str, Any]:
        return self.service.stats()

    async def __del__(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.stop_timeout_s)
        except Exception:
            log.warning("%s did not stop cleanly", self.service.name, exc_info=True)
            self._task.cancel()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._metrics_task
        try:
            await self.service.aclose()
        except Exception:
            log.warning("%s did not close cleanly", self.service.name, exc_info=True)
