"""The experiments: each a hypothesis and one fault, injected while the replay runs.

An experiment's ``inject`` waits for its moment, injects the fault, undoes it
(or lets the stack undo it) and sets ``run.fault_over``; the runner measures
recovery from then on. Everything else (the replay, the measurement) is the
runner's, the same for every experiment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bgp_orchestrator.chaos import faults

if TYPE_CHECKING:
    from bgp_orchestrator.chaos.runner import Run


@dataclass(frozen=True)
class Size:
    #: background updates of the replay, and their rate
    updates: int
    rate: float
    #: labelled incidents spread over the replay (one of each kind per ten)
    incidents: int
    #: seconds into the replay at which the fault starts
    fault_at_s: float
    #: how long a stopped service stays stopped, a receiver hangs, clients hammer
    hold_s: float
    #: how long to wait for the stack to catch up after the fault
    settle_s: float = 120.0


DEFAULT = Size(updates=40_000, rate=2_000.0, incidents=20, fault_at_s=5.0, hold_s=30.0)
SHORT = Size(updates=8_000, rate=1_000.0, incidents=10, fault_at_s=2.0, hold_s=6.0, settle_s=90.0)


Inject = Callable[["Run"], Awaitable[None]]


@dataclass(frozen=True)
class Experiment:
    name: str
    fault: str
    hypothesis: str
    inject: Inject
    #: Serve deployment (app, name) of the killed replica: the time Serve takes to
    #: replace it is reported (``replaced_s``); it is the recovery itself only where
    #: that replica is the only one doing the work
    replaced: tuple[str, str] | None = None
    replacement_is_recovery: bool = False
    #: whether the detectors catching up with the log counts as the recovery (not for a
    #: fault of the API, whose recovery is when requests stop failing)
    stream_recovery: bool = True
    #: stream seconds per second of replay (>1: the replay's timestamps run ahead, so the
    #: session stats close several windows during one experiment), and whether the
    #: stored windows are compared with what was published
    stream_speed: float = 1.0
    windows: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


async def _at_fault_time(run: Run) -> None:
    await run.replay_started.wait()
    delay = run.size.fault_at_s - (time.monotonic() - run.replay_started_at)
    if delay > 0:
        await asyncio.sleep(delay)


def _kill(app: str, deployment: str) -> Inject:
    async def inject(run: Run) -> None:
        await _at_fault_time(run)
        run.fault_started = time.monotonic()
        run.victim = await asyncio.to_thread(faults.kill_replica, run.serve, app, deployment)
        run.fault_over = time.monotonic()

    return inject


def _stop(service: str) -> Inject:
    async def inject(run: Run) -> None:
        svc = faults.embedded(run.settings, service)
        await _at_fault_time(run)
        run.fault_started = time.monotonic()
        await asyncio.to_thread(svc.stop)
        await asyncio.sleep(run.size.hold_s)
        await asyncio.to_thread(svc.start)
        run.fault_over = time.monotonic()

    return inject


async def _restart_broker(run: Run) -> None:
    svc = faults.embedded(run.settings, "kafka")
    await _at_fault_time(run)
    # The replay pauses (a producer cannot publish to a broker that is away; what it
    # would do then is the publisher's concern, measured by its own tests), everything
    # it sent is acknowledged, and what the broker holds is read and measured: the
    # records the consumer groups have not committed yet are what a restart loses.
    async with run.paused():
        run.fault_started = time.monotonic()
        await run.snapshot_before_restart()
        await asyncio.to_thread(svc.stop)
        await asyncio.to_thread(svc.start)
        await run.recreate_topics()  # what `bgpo up` does for a broker it starts
        run.fault_over = time.monotonic()


async def _api_under_load(run: Run) -> None:
    hammer = faults.Hammer(run.settings.api_url, run.replay.slugs[0], clients=100)
    await hammer.start()
    try:
        await _at_fault_time(run)
        run.fault_started = time.monotonic()
        run.victim = await asyncio.to_thread(
            faults.kill_replica, run.serve, "peering-api", "PeeringAPI"
        )
        run.fault_over = time.monotonic()
        await asyncio.sleep(run.size.hold_s)
    finally:
        await hammer.stop()
    run.failed_requests = hammer.failed
    run.requests = hammer.ok + hammer.failed
    if hammer.failures:
        run.last_failure = hammer.failures[-1][0]
        kinds: dict[str, int] = {}
        for _, why in hammer.failures:
            kinds[why] = kinds.get(why, 0) + 1
        run.notes.append("failed requests: " + ", ".join(f"{k} x{v}" for k, v in kinds.items()))


async def _hanging_webhook(run: Run) -> None:
    healthy, hanging = faults.Receiver(), faults.Receiver(hang=True)
    await healthy.start()
    await hanging.start()
    run.receivers = (healthy, hanging)
    await run.add_webhooks(healthy.url, hanging.url)
    await _at_fault_time(run)
    run.fault_started = time.monotonic()
    await asyncio.sleep(run.size.hold_s)
    hanging.heal()
    run.fault_over = time.monotonic()


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "detector-kill",
            "SIGKILL one of the two Detector replicas mid-replay",
            "The other replica takes over the dead one's partitions at the next rebalance and "
            "replays them from their last commit; Serve starts a replacement. No update is "
            "skipped, no conflict stored twice or missed.",
            _kill("detector", "Detector"),
            replaced=("detector", "Detector"),
        ),
        Experiment(
            "session-stats-kill",
            "SIGKILL a SessionStats replica mid-replay",
            "The other replica takes over its partitions from their checkpoints (Serve also "
            "starts a replacement), and the windows are merged once per session: every "
            "stored window counts each announcement and withdrawal of the replay once. "
            "Detection is not affected.",
            _kill("session-stats", "SessionStats"),
            replaced=("session-stats", "SessionStats"),
            replacement_is_recovery=True,
            stream_speed=30.0,
            windows=True,
        ),
        Experiment(
            "broker-restart",
            "stop and restart the embedded Kafka-protocol broker (memory only)",
            "The restart loses what the documentation says, and nothing else: the records "
            "the broker held that no consumer had committed, and the detector state built "
            "from the old log (conflicts that need routes from before the restart). The "
            "workers recognise the new log, rebuild from its start and process every update "
            "published after the restart.",
            _restart_broker,
        ),
        Experiment(
            "postgres-stop",
            "stop the embedded PostgreSQL for the hold time, then start it again",
            "The detectors pause their partitions (nothing committed or checkpointed past "
            "unstored conflicts), retry with capped backoff and resume by themselves; every "
            "conflict is stored once.",
            _stop("postgres"),
        ),
        Experiment(
            "redis-stop",
            "stop the embedded Redis for the hold time, then start it again",
            "Checkpoints cannot be saved: the workers pause and resume from their checkpoints "
            "once Redis is back, never running a partition with empty state.",
            _stop("redis"),
        ),
        Experiment(
            "api-kill",
            "SIGKILL one PeeringAPI replica under 100 concurrent clients",
            "The ingress sends requests to the surviving replica; Serve replaces the dead one; "
            "at most the requests in flight on the dead replica fail.",
            _api_under_load,
            replaced=("peering-api", "PeeringAPI"),
            stream_recovery=False,
        ),
        Experiment(
            "webhook-hang",
            "one tenant's webhook receiver accepts connections and never answers",
            "A hanging receiver delays only its own deliveries: the healthy webhooks receive "
            "every conflict event, and once the receiver answers again its deliveries arrive "
            "(retried, each event once).",
            _hanging_webhook,
        ),
    )
}
