"""Runs one experiment against the stack `bgpo up` started, and measures it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.chaos import measure
from bgp_orchestrator.chaos.experiments import Experiment, Size
from bgp_orchestrator.chaos.faults import Receiver, wait_replaced
from bgp_orchestrator.chaos.replay import Replay, prepare
from bgp_orchestrator.errors import ServiceUnavailable
from bgp_orchestrator.ingest.publisher import UpdatePublisher, ensure_topics
from bgp_orchestrator.local.services import Endpoints, endpoints
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.stream import CARRIERS
from bgp_orchestrator.stack.lifecycle import dashboard_url, demo_process
from bgp_orchestrator.stack.serve_client import ServeClient
from bgp_orchestrator.storage.database import asyncpg_dsn

log = logging.getLogger(__name__)
Say = Callable[[str], None]

#: recovery is measured on the records published until this long after the fault
PROBE_S = 3.0
#: conflict types whose detection needs routes seen earlier (detector state)
STATEFUL = ("moas", "visibility-loss")


@dataclass
class Result:
    experiment: str
    failed_requests: int
    recovery_s: float | None
    updates_lost: int
    duplicate_conflicts: int
    conflicts_missed: int
    hypothesis: str = ""
    updates: int = 0
    expected_conflicts: int = 0
    requests: int = 0
    #: seconds until Serve had replaced a killed replica
    replaced_s: float | None = None
    #: broker restart: what the documentation says is lost, measured
    lost_as_documented: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def undocumented_loss(self) -> int:
        documented = (self.lost_as_documented or {}).get("updates", 0)
        return self.updates_lost - documented

    @property
    def held(self) -> bool:
        """The acceptance: nothing lost beyond what is documented, nothing duplicated or
        missed, recovered within 30 s."""
        return (
            self.undocumented_loss == 0
            and self.duplicate_conflicts == 0
            and self.conflicts_missed == 0
            and self.recovery_s is not None
            and self.recovery_s < 30.0
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "experiment": self.experiment,
            "failed_requests": self.failed_requests,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 1),
            "updates_lost": self.updates_lost,
            "duplicate_conflicts": self.duplicate_conflicts,
            "conflicts_missed": self.conflicts_missed,
            "hypothesis_held": self.held,
            "updates": self.updates,
            "expected_conflicts": self.expected_conflicts,
        }
        if self.requests:
            out["requests"] = self.requests
        if self.replaced_s is not None:
            out["replaced_s"] = round(self.replaced_s, 1)
        if self.lost_as_documented is not None:
            out["lost_as_documented"] = self.lost_as_documented
        if self.notes:
            out["notes"] = self.notes
        return out


class Run:
    """The state of one experiment's run, shared by the replay, the fault and the
    measurement."""

    def __init__(
        self,
        settings: Settings,
        size: Size,
        ep: Endpoints,
        replay: Replay,
        serve: ServeClient,
        partitions: int,
        start_ends: dict[int, int],
    ) -> None:
        self.settings, self.size, self.ep, self.replay = settings, size, ep, replay
        self.serve = serve
        self.partitions = partitions
        self.reader = measure.LogReader(ep.kafka_bootstrap_servers, settings.kafka_topic)
        # The detectors commit a record once its conflicts are stored: their committed
        # offsets are what was processed. The session stats commit a record only once
        # every update in it belongs to a closed (stored) window, minutes later; their
        # losses are measured on the stored windows instead (see measure.wait_windows).
        self.groups = [settings.detector_group]
        self.replay_started = asyncio.Event()
        self.replay_started_at = 0.0
        self.fault_started: float | None = None
        self.fault_over: float | None = None
        self.victim: str | None = None
        self.replaced_s: float | None = None
        self.failed_requests = 0
        self.requests = 0
        self.last_failure: float | None = None
        self.notes: list[str] = []
        self.receivers: tuple[Receiver, Receiver] | None = None
        self.webhooks: list[tuple[str, int, bool]] = []  # slug, id, hanging
        # the log: earlier segments (before a broker restart) and the current one
        self.start_ends = start_ends
        self.earlier_log_updates = 0
        self.published_log_updates = 0
        self.documented: dict[str, int] | None = None
        self.lost_prefixes: set[str] = set()
        self.restarted = False
        self.after_restart: set[str] = set()
        self._gate = asyncio.Event()
        self._gate.set()
        self._publishing = asyncio.Lock()
        self.publisher: UpdatePublisher | None = None
        #: announcements and withdrawals published, per window start (session stats)
        self.window_counts: dict[int, int] = {}
        self.window_s = settings.flap_window_s
        #: prefixed to the collector of every update (sessions of this run only), so the
        #: stored windows can be compared with this replay alone
        self.collector_tag = ""
        self.carriers = {p.address for p in replay.sim.world.peers[:CARRIERS]}

    # --- the replay --------------------------------------------------------------------

    async def open_publisher(self) -> UpdatePublisher:
        s = self.settings
        publisher = UpdatePublisher(
            self.ep.kafka_bootstrap_servers,
            s.kafka_topic,
            s.kafka_dlq_topic,
            self.partitions,
            retries=s.kafka_publish_retries,
            retry_backoff_s=s.kafka_publish_backoff_s,
            request_timeout_s=s.kafka_publish_timeout_s,
        )
        await publisher.start()
        return publisher

    async def replay_stream(self) -> None:
        sim = self.replay.sim
        incident_of = {id(u): i.prefix for i in sim.plan() for u in i.updates}
        self.publisher = await self.open_publisher()
        try:
            started = time.monotonic()
            self.replay_started_at = started
            self.replay_started.set()
            done = 0
            for generated in itertools.chain([sim.warmup()], sim.updates(500)):
                chunk = self._tag(generated) if self.collector_tag else generated
                await self._gate.wait()
                async with self._publishing:
                    await self.publisher.publish(chunk)
                self.published_log_updates += measure.log_updates(chunk, self.partitions)
                self._count_windows(chunk)
                if self.restarted:
                    self.after_restart.update(
                        p for u in chunk if (p := incident_of.get(id(u))) is not None
                    )
                done += len(chunk)
                delay = started + done / self.size.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.publisher.flush()
        finally:
            await self.publisher.close()

    def _tag(self, chunk: list[Update]) -> list[Update]:
        # Not the carriers of the tenants' prefixes: the visibility detector counts the
        # share of the sessions that carry a prefix, and earlier runs' carriers would
        # dilute it. Their updates are left out of the window comparison.
        tag, carriers = self.collector_tag, self.carriers
        return [
            u if u.peer_address in carriers else u._replace(collector=tag + u.collector)
            for u in chunk
        ]

    @property
    def compared_sessions(self) -> set[str]:
        tag = self.collector_tag
        return {
            f"{tag}{p.collector}|{p.address}"
            for p in self.replay.sim.world.peers
            if p.address not in self.carriers
        }

    def _count_windows(self, chunk: list[Update]) -> None:
        w = self.window_s
        counts = self.window_counts
        tag = self.collector_tag
        for u in chunk:
            if u.kind in (Kind.ANNOUNCE, Kind.WITHDRAW) and u.collector.startswith(tag):
                start = int(u.timestamp // w * w)
                counts[start] = counts.get(start, 0) + 1

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        self._gate.clear()
        try:
            async with self._publishing:
                if self.publisher is not None:
                    await self.publisher.flush()
                yield
        finally:
            self._gate.set()

    # --- the broker restart --------------------------------------------------------------

    async def snapshot_before_restart(self) -> None:
        """Read the old log before it is gone: its updates, and those no consumer group
        committed yet (what the restart loses)."""
        ends = await self.reader.ends()
        segment = {p: (self.start_ends.get(p, 0), end) for p, end in ends.items()}
        self.earlier_log_updates += len(await self.reader.read(segment))
        documented = 0
        for group in self.groups:
            unconsumed = await self.reader.read(
                measure.behind(await self.reader.committed(group), ends)
            )
            documented = max(documented, len(unconsumed))
            if group == self.settings.detector_group:
                self.lost_prefixes = {u.prefix for u in unconsumed if u.prefix}
        self.documented = {"updates": documented}
        self.start_ends = {p: 0 for p in ends}
        self.restarted = True

    async def recreate_topics(self) -> None:
        s = self.settings
        deadline = time.monotonic() + 30
        while True:
            try:
                await ensure_topics(
                    self.ep.kafka_bootstrap_servers,
                    s.kafka_topic,
                    s.kafka_dlq_topic,
                    self.partitions,
                )
                return
            except ServiceUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    # --- webhooks ------------------------------------------------------------------------

    async def add_webhooks(self, healthy: str, hanging: str) -> None:
        async with httpx.AsyncClient(base_url=self.settings.api_url, timeout=15) as client:
            for n, slug in enumerate(self.replay.slugs):
                hooks = [(healthy, False)] + ([(hanging, True)] if n == 0 else [])
                for url, hangs in hooks:
                    name = f"chaos-{'hanging' if hangs else 'healthy'}-{int(time.time() * 1000)}"
                    r = await client.post(
                        "/api/v1/webhooks",
                        json={"name": name, "url": url, "min_severity": "info"},
                        headers={"X-Tenant": slug},
                    )
                    if r.status_code == 422 and '"url"' in r.text:
                        raise ServiceUnavailable(
                            "chaos-webhook-refused",
                            "the stack refuses webhooks to this machine's receivers (webhooks "
                            "reach public addresses only); start it with "
                            "BGPO_WEBHOOK_ALLOWED_NETWORKS='[\"127.0.0.0/8\"]' for this "
                            f"experiment: {r.text[:300]}",
                        )
                    if r.status_code != 201:
                        raise ServiceUnavailable(
                            "chaos-webhook-refused", f"creating a webhook failed: {r.text[:300]}"
                        )
                    self.webhooks.append((slug, int(r.json()["id"]), hangs))

    async def remove_webhooks(self) -> None:
        async with httpx.AsyncClient(base_url=self.settings.api_url, timeout=15) as client:
            for slug, hook, _ in self.webhooks:
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(f"/api/v1/webhooks/{hook}", headers={"X-Tenant": slug})


# --- the run -----------------------------------------------------------------------------


def _detector_env(serve: ServeClient) -> dict[str, str]:
    apps = serve.applications()
    detector = apps.get("detector") or {}
    if detector.get("status") != "RUNNING":
        raise ServiceUnavailable(
            "chaos-stack-not-running",
            "the detector application is not running (see `bgpo status`); start the stack "
            "with `bgpo up`",
        )
    config = detector.get("deployed_app_config") or {}
    env: dict[str, str] = (config.get("runtime_env") or {}).get("env_vars") or {}
    return env


async def _connect(ep: Endpoints, timeout_s: float = 60.0) -> asyncpg.Connection:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await asyncpg.connect(asyncpg_dsn(ep.database_url), timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def run(
    experiment: Experiment, settings: Settings, size: Size, say: Say = lambda _: None
) -> Result:
    """Replay, inject the experiment's fault, wait for the stack to recover, measure."""
    run_, events_before = await _start(experiment, settings, size)
    say(
        f"{experiment.name}: replaying {size.updates:,} updates at {size.rate:,.0f}/s with "
        f"{size.incidents} incidents ({len(run_.replay.expected)} expected conflicts)"
    )
    recovery = await _inject(experiment, run_)
    say(f"{experiment.name}: replay done; waiting for the detectors to finish the log")
    updates_lost = await _log_loss(run_)
    windows = None
    if experiment.windows:
        from bgp_orchestrator.flaps.feature_store import offline_dir

        say(f"{experiment.name}: waiting for the session stats to store its windows")
        sessions = run_.compared_sessions
        windows = await measure.wait_windows(
            offline_dir(settings),
            run_.window_counts,
            sessions,
            size.settle_s,
            settings.flap_window_s,
        )
    conn = await _connect(run_.ep)
    try:
        outcome, webhook = await _conflicts(conn, run_, events_before)
    finally:
        await conn.close()
        if run_.webhooks:
            await run_.remove_webhooks()
        if run_.receivers:
            for receiver in run_.receivers:
                await receiver.close()
    return _result(experiment, run_, updates_lost, recovery, outcome, webhook, windows)


async def _start(experiment: Experiment, settings: Settings, size: Size) -> tuple[Run, int]:
    """Checks, the replay prepared, the log's offsets before it."""
    if demo_process(settings).process() is not None:
        raise ServiceUnavailable(
            "chaos-demo-running",
            "the demo simulator is publishing into this stack; its updates would be counted "
            "with the experiment's. Run the suite on a stack started without --demo",
        )
    ep = endpoints(settings)
    serve = ServeClient(dashboard_url(settings))
    env = await asyncio.to_thread(_detector_env, serve)
    s = settings
    partitions = await ensure_topics(
        ep.kafka_bootstrap_servers, s.kafka_topic, s.kafka_dlq_topic, s.kafka_partitions
    )
    conn = await _connect(ep)
    try:
        version = await conn.fetchval("SELECT version FROM reference_version WHERE id = 1")
        start_time, ahead, clock = _stream_start(settings, experiment)
        replay = await prepare(
            settings,
            conn,
            env,
            total=size.updates,
            rate=size.rate / _speed(experiment, settings, size),
            incidents=size.incidents,
            start_time=start_time,
        )
        stream_end = max(ahead, start_time + size.updates / replay.sim.rate)
        clock.write_text(json.dumps({"stream_end": stream_end, "at": time.time()}))
        if await conn.fetchval("SELECT version FROM reference_version WHERE id = 1") != version:
            await asyncio.sleep(4.0)  # the detectors reload the new tenants every 2 s
        events_before = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM conflict_events"))
    finally:
        await conn.close()
    reader = measure.LogReader(ep.kafka_bootstrap_servers, s.kafka_topic)
    start_ends = await reader.ends()
    if await measure.wait_caught_up(reader, [s.detector_group], start_ends, 60.0) is None:
        raise ServiceUnavailable(
            "chaos-backlog",
            "the detectors are still behind the log after 60 s (see `bgpo status`); an "
            "experiment started now would blame that backlog on its fault",
        )
    run_ = Run(settings, size, ep, replay, serve, partitions, start_ends)
    if experiment.windows:
        run_.collector_tag = f"chaos{int(time.time())}-"
    return run_, events_before


async def _inject(experiment: Experiment, run_: Run) -> list[float | None]:
    """Run the replay and the fault; the parts of the recovery, measured from the end of
    the fault (None: did not recover within the settle time)."""
    replay_task = asyncio.create_task(run_.replay_stream())
    parts: list[float | None] = []
    try:
        await experiment.inject(run_)
        assert run_.fault_over is not None
        # Recovered: the detectors committed every record published until PROBE_S after
        # the fault was over (records that reach every partition with traffic, also
        # those a killed replica held until the group rebalances).
        await asyncio.sleep(PROBE_S)
        target = await _ends_when_back(run_.reader)
        over_for = time.monotonic() - run_.fault_over
        watchers: list[Awaitable[float | None]] = [
            measure.wait_caught_up(run_.reader, run_.groups, target, run_.size.settle_s)
        ]
        if experiment.replaced is not None and run_.victim is not None:
            app, dep = experiment.replaced
            watchers.append(wait_replaced(run_.serve, app, dep, run_.victim))
        caught, *replaced = [
            None if r is None else r + over_for for r in await asyncio.gather(*watchers)
        ]
        if experiment.stream_recovery:
            parts.append(caught)
        else:
            run_.notes.append(
                "the detectors caught up with the log "
                + ("-" if caught is None else f"{caught:.1f} s")
                + " after the fault (not this experiment's recovery)"
            )
        if replaced:
            run_.replaced_s = replaced[0]
            if experiment.replacement_is_recovery:
                parts.append(replaced[0])
            elif replaced[0] is None:
                run_.notes.append("Serve did not replace the killed replica in time")
        await replay_task
    finally:
        if not replay_task.done():
            replay_task.cancel()
            with contextlib.suppress(BaseException):
                await replay_task
    if run_.last_failure is not None and run_.fault_over is not None:
        parts.append(max(0.0, run_.last_failure - run_.fault_over))
    elif not experiment.stream_recovery:
        parts.append(0.0)  # no request failed
    return parts


async def _log_loss(run_: Run) -> int:
    """Updates published but not in the log, plus those in the log the detectors never
    committed (after waiting for them), plus those a broker restart took."""
    reader = run_.reader
    final_ends = await reader.ends()
    await measure.wait_caught_up(reader, run_.groups, final_ends, run_.size.settle_s)
    in_log = run_.earlier_log_updates + len(
        await reader.read({p: (run_.start_ends.get(p, 0), e) for p, e in final_ends.items()})
    )
    unconsumed = 0
    for group in run_.groups:
        behind = measure.behind(await reader.committed(group), final_ends)
        unconsumed = max(unconsumed, len(await reader.read(behind)))
    documented = (run_.documented or {}).get("updates", 0)
    return max(0, run_.published_log_updates - in_log) + unconsumed + documented


def _result(
    experiment: Experiment,
    run_: Run,
    updates_lost: int,
    recovery_parts: list[float | None],
    outcome: measure.ConflictOutcome,
    webhook: dict[str, Any] | None,
    windows: measure.WindowOutcome | None,
) -> Result:
    missed = outcome.missed
    duplicates = outcome.duplicates
    notes = list(run_.replay.unjudged) + list(experiment.notes) + run_.notes
    lost_as_documented = None
    if run_.documented is not None:
        in_lost = [e for e in missed if e.prefix in run_.lost_prefixes]
        stateful = [
            e for e in missed
            if e.type in STATEFUL and e.prefix in run_.after_restart and e not in in_lost
        ]  # fmt: skip
        missed = [e for e in missed if e not in in_lost and e not in stateful]
        lost_as_documented = {
            "updates": run_.documented["updates"],
            "conflicts_in_lost_records": len(in_lost),
            "conflicts_needing_old_state": len(stateful),
        }
    missed_events = 0
    if webhook is not None:
        recovery_parts.append(webhook["recovery_s"])
        duplicates += webhook["duplicates"]
        missed_events = webhook["missed"]
        if missed_events:
            notes.append(f"{missed_events} conflict event(s) never reached the healthy webhooks")
        notes.append(
            f"healthy webhooks: {webhook['healthy']} events delivered; the hanging one: "
            f"{webhook['hanging']} events once it answered again"
        )
    if windows is not None:
        updates_lost += windows.lost
        duplicates += windows.counted_twice
        never = f", windows never stored: {windows.missing_windows}"
        notes.append(
            f"session stats: {windows.windows} window(s) compared, {windows.lost} updates "
            f"missing, {windows.counted_twice} counted twice"
            + (never if windows.missing_windows else "")
        )
        notes.append(
            "session stats windows (start: published/stored): "
            + ", ".join(f"{w}: {a}/{b}" for w, (a, b) in windows.per_window.items())
        )
    notes.extend(outcome.duplicate_detail[:5])
    notes.extend(f"missed: {e.type} {e.prefix} origin {e.origin_asn}" for e in missed[:5])
    known = [r for r in recovery_parts if r is not None]
    recovery = None if len(known) < len(recovery_parts) else max(known, default=0.0)
    return Result(
        experiment.name,
        run_.failed_requests,
        recovery,
        updates_lost,
        duplicates,
        len(missed) + missed_events,
        hypothesis=experiment.hypothesis,
        updates=run_.published_log_updates,
        expected_conflicts=outcome.expected,
        requests=run_.requests,
        replaced_s=run_.replaced_s,
        lost_as_documented=lost_as_documented,
        notes=notes,
    )


def _speed(experiment: Experiment, settings: Settings, size: Size) -> float:
    """Stream seconds per second of replay: for the session-stats experiment at least
    enough for the replay to span two windows, so the last closes soon after it."""
    if experiment.stream_speed <= 1.0:
        return experiment.stream_speed
    span = 2 * settings.flap_window_s * size.rate / size.updates
    return max(experiment.stream_speed, span)


def _stream_start(settings: Settings, experiment: Experiment) -> tuple[float, float, Path]:
    """When the replay's stream time starts: now, or for an experiment whose stream
    runs ahead of the clock, the start of a window no replay has used yet (after the
    session stats' event time, which an earlier fast replay moved ahead of the clock).
    Also where event time is now at the latest (``ahead``), and the file that keeps it."""
    clock = settings.data_dir / "chaos" / "stream-clock.json"
    clock.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    try:
        last = json.loads(clock.read_text())
        ahead = float(last["stream_end"]) + (now - float(last["at"]))
    except (OSError, ValueError, KeyError):
        ahead = now
    ahead = max(now, ahead)
    if experiment.stream_speed <= 1.0:
        return now, ahead, clock
    # Updates older than the session stats' event time are counted in its open window
    # (late): start a whole window after it, so no window compared holds any of those.
    w = settings.flap_window_s
    return float(int((ahead + w) // w + 1) * w), ahead, clock


async def _ends_when_back(reader: measure.LogReader, timeout_s: float = 60.0) -> dict[int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await reader.ends()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _conflicts(
    conn: asyncpg.Connection, run_: Run, events_before: int
) -> tuple[measure.ConflictOutcome, dict[str, Any] | None]:
    """The stored conflicts against the expectation (waiting a little for the last
    writes), and for the webhook experiment what the receivers got."""
    replay = run_.replay
    deadline = time.monotonic() + 20
    while True:
        outcome = await measure.compare_conflicts(conn, replay.expected, replay.tenant_ids)
        if not outcome.missed or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    if run_.receivers is None:
        return outcome, None
    healthy, hanging = run_.receivers
    first_tenant = replay.tenant_ids[replay.sim.world.tenants[0].id]
    rows = await conn.fetch(
        "SELECT id, tenant_id FROM conflict_events WHERE id > $1 AND tenant_id IS NOT NULL "
        "AND tenant_id = ANY($2::bigint[])",
        events_before,
        list(replay.tenant_ids.values()),
    )
    wanted = {r["id"] for r in rows}
    wanted_hanging = {r["id"] for r in rows if r["tenant_id"] == first_tenant}
    assert run_.fault_over is not None
    deadline = time.monotonic() + run_.size.settle_s
    recovery: float | None = None
    while time.monotonic() < deadline:
        got = {d.event_id for d in healthy.deliveries}
        got_hanging = {d.event_id for d in hanging.deliveries}
        if wanted <= got and wanted_hanging <= got_hanging:
            last = max((d.at for d in hanging.deliveries), default=run_.fault_over)
            recovery = max(0.0, last - run_.fault_over)
            break
        await asyncio.sleep(0.5)
    duplicates = 0
    for receiver in (healthy, hanging):
        per_event: dict[int, set[str]] = {}
        for d in receiver.deliveries:
            per_event.setdefault(d.event_id, set()).add(d.delivery_id)
        # the same delivery id again is a retry (at least once, de-duplicated by the
        # receiver); two delivery ids for one event would be a duplicate alert
        duplicates += sum(len(ids) - 1 for ids in per_event.values())
    got = {d.event_id for d in healthy.deliveries}
    return outcome, {
        "recovery_s": recovery,
        "duplicates": duplicates,
        "missed": len(wanted - got),
        "healthy": len({d.event_id for d in healthy.deliveries}),
        "hanging": len({d.event_id for d in hanging.deliveries}),
    }
