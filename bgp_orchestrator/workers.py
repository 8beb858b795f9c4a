"""Builds each background worker from the settings, with the clients it owns.

The Serve deployments call one of these in their ``__init__`` and host the
result (``deployments/hosting.py``); the worker closes its own clients in
``aclose``. Nothing here imports Ray or FastAPI.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bgp_orchestrator.alerts.dispatcher import LEASE_S, AlertDispatcher
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.mailer import Mailer
from bgp_orchestrator.alerts.signing import secret_box
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.local.services import endpoints
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import open_database
from bgp_orchestrator.stream.progress import ProgressStore


def open_redis(settings: Settings) -> Any:
    """An asyncio Redis client of the configured (or embedded) server; connects lazily."""
    import redis.asyncio as aioredis

    return aioredis.from_url(
        endpoints(settings).redis_url, socket_timeout=5.0, socket_connect_timeout=3.0
    )


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap_servers is None and not settings.development:
        raise ConfigurationError(
            "kafka-missing", "BGPO_KAFKA_BOOTSTRAP_SERVERS must be set in production"
        )
    return endpoints(settings).kafka_bootstrap_servers


def detection_worker(settings: Settings, name: str) -> Any:
    from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
    from bgp_orchestrator.detection.worker import DetectionWorker

    db = open_database(settings)
    redis = open_redis(settings)
    return DetectionWorker(
        settings,
        db,
        RedisCheckpoints(redis, settings.detector_group, settings.kafka_topic),
        _bootstrap(settings),
        name=name,
        progress=ProgressStore(redis, settings.detector_group, settings.kafka_topic),
        closers=[db.close, redis.aclose],
    )


def session_stats_worker(settings: Settings, name: str) -> Any:
    from bgp_orchestrator.anomaly.store import open_metric_store
    from bgp_orchestrator.anomaly.writer import BackgroundMetricWriter
    from bgp_orchestrator.detection.checkpoint import RedisCheckpoints
    from bgp_orchestrator.sessionstats import SessionStatsWorker
    from bgp_orchestrator.usage.sessions import SessionUsage

    store = open_metric_store(settings)
    writer = BackgroundMetricWriter(store)
    redis = open_redis(settings)
    usage = SessionUsage(open_database(settings), settings.usage_flush_s, owns_db=True)

    def start() -> None:
        writer.start()
        usage.start()

    async def close_writer() -> None:
        await writer.close(timeout=20.0)
        await store.close()

    worker = SessionStatsWorker(
        settings,
        writer,
        _bootstrap(settings),
        name=name,
        checkpoints=lambda group, topic: RedisCheckpoints(redis, group, topic),
        progress=ProgressStore(redis, settings.session_stats_group, settings.kafka_topic),
        merge_progress=ProgressStore(
            redis, settings.session_merge_group, settings.session_windows_topic
        ),
        closers=[close_writer, usage.aclose, redis.aclose],
        describe=lambda: {
            "metric_writer": dataclasses.asdict(writer.stats()),
            "metric_store": store.describe(),
            "usage": usage.recorder.stats(),
        },
        on_start=start,
        usage=usage.record,
    )
    return worker


def alert_dispatcher(settings: Settings) -> AlertDispatcher:
    timeout_s = settings.webhook_timeout_s
    mailer = Mailer.from_settings(settings)
    return AlertDispatcher(
        open_database(settings),
        timeout_s=timeout_s,
        owns_db=True,
        lease_s=max(LEASE_S, 2 * timeout_s, 2 * mailer.timeout_s),
        mailer=mailer,
        egress=EgressPolicy.from_settings(settings),
        secrets=secret_box(settings),
        max_answer_bytes=settings.webhook_max_response_bytes,
    )


def job_scheduler(settings: Settings) -> Any:
    from bgp_orchestrator.stack.scheduler import JobScheduler

    return JobScheduler.from_settings(settings, open_redis(settings))
