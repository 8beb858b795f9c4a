"""Delivers conflict events to webhooks: at least once, each webhook at its own pace.

Events come from ``conflict_events`` (written in the same transaction as the
conflict change). Fan-out creates one delivery per matching webhook exactly
once (a unique constraint). A delivery is leased before it is sent, so two
dispatchers never send the same one at the same time, and the lease counts
the attempt: a dispatcher killed mid-request still used one up.

Deliveries run as tasks of their own, at most ``per_webhook`` in flight per
webhook and ``max_in_flight`` in all; each attempt ends after ``timeout_s`` in
total, whatever the receiver does (no answer, or bytes trickling in). A slow
or hanging receiver therefore holds only its own slots: other webhooks keep
their usual latency. Failures are retried after 2, 4, 8 ... seconds (at most
an hour); after ``max_attempts`` the delivery is ``failed``, with its last
error and time, listed by ``GET /api/v1/webhooks/{id}/deliveries`` and queued
again by ``POST .../deliveries/{id}/retry``. Receivers can de-duplicate on the
``X-BGPO-Delivery`` (= ``webhook-id``) header.

Every attempt checks the URL again (:mod:`~bgp_orchestrator.alerts.egress`): the
host is resolved within the attempt's time, all its addresses must be public
(or allowed), and the request goes to the checked address; redirects are not
followed; at most ``max_answer_bytes`` of the answer are read. Each body is
signed with the webhook's secret (:mod:`~bgp_orchestrator.alerts.signing`).
Logs name webhooks by id, never by URL.

E-mail is a channel of the same kind: a ``webhooks`` row whose URL is
``mailto:<address>`` (``channel`` = ``email``, see migration 0012), fanned out,
leased, timed out, retried, given up and listed exactly like a webhook; its
attempts go through :class:`~bgp_orchestrator.alerts.mailer.Mailer` instead of
HTTP, each bounded by the mailer's own timeout. Without an SMTP server an
e-mail delivery is given up at its first attempt with the reason
(:data:`~bgp_orchestrator.alerts.mailer.NOT_CONFIGURED`), visible in the API and
retried from there once one is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from bgp_orchestrator.alerts import deliveries, formats, signing
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.mailer import NOT_CONFIGURED, Mailer
from bgp_orchestrator.errors import BgpoError, ConfigurationError
from bgp_orchestrator.settings import get_settings
from bgp_orchestrator.storage import conflicts as conflict_store
from bgp_orchestrator.storage.database import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
LEASE_S = 60.0
#: Bytes of a receiver's answer kept (the start of an error body); the rest is not read.
MAX_ANSWER_BYTES = 64 * 1024

FAN_OUT = """
WITH pending AS (
    SELECT id, conflict_id, tenant_id FROM conflict_events
    WHERE dispatched_at IS NULL ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED
), fan AS (
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT w.id, p.id FROM pending p
    JOIN conflicts c ON c.id = p.conflict_id
    JOIN webhooks w ON w.tenant_id = p.tenant_id AND w.enabled
        AND array_position(ARRAY['info','low','medium','high','critical'], c.severity)
            >= array_position(ARRAY['info','low','medium','high','critical'], w.min_severity)
        AND (cardinality(w.types) = 0 OR c.type = ANY(w.types))
    ON CONFLICT (webhook_id, event_id) DO NOTHING
)
UPDATE conflict_events SET dispatched_at = now() WHERE id IN (SELECT id FROM pending)
"""


def quiet_http_client_logs() -> None:
    """httpx logs every request's URL at INFO (httpcore its host and port at DEBUG):
    in a process that sends webhooks those lines would put hook URLs in the logs, so
    both loggers report warnings only."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (inherit) included
            logger.setLevel(logging.WARNING)


@dataclass
class DispatchStats:
    fanned_out: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0


#: Dispatch rounds failing in a row (PostgreSQL away) after which the dispatcher reports it.
MAX_FAILED_ROUNDS = 30


class AlertDispatcher:
    """A :class:`~bgp_orchestrator.service.Service`: fan-out once per ``interval_s``,
    deliveries started whenever a slot is free."""

    name = "alert-dispatcher"

    def __init__(
        self,
        db: Database,
        timeout_s: float = 5.0,
        interval_s: float = 1.0,
        owns_db: bool = False,
        *,
        per_webhook: int = 4,
        max_in_flight: int = 32,
        max_attempts: int = MAX_ATTEMPTS,
        lease_s: float = LEASE_S,
        backoff_s: float = 2.0,
        egress: EgressPolicy | None = None,
        secrets: signing.SecretBox | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        mailer: Mailer | None = None,
    ) -> None:
        if mailer is not None and lease_s < 2 * mailer.timeout_s:
            raise ConfigurationError(
                "lease-too-short",
                f"the lease ({lease_s:g} s) must last at least twice the e-mail timeout "
                f"({mailer.timeout_s:g} s), or a slow attempt would be sent twice",
                "lease_s",
                lease_s,
            )
        if lease_s < 2 * timeout_s:
            raise ConfigurationError(
                "lease-too-short",
                f"the lease ({lease_s:g} s) must last at least twice the delivery timeout "
                f"({timeout_s:g} s), or a slow attempt would be sent twice",
                "lease_s",
                lease_s,
            )
        if per_webhook < 1 or max_in_flight < per_webhook or max_attempts < 1:
            raise ConfigurationError(
                "invalid-concurrency",
                "need 1 <= per_webhook <= max_in_flight and max_attempts >= 1",
                "per_webhook",
                per_webhook,
            )
        self.db = db
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.per_webhook = per_webhook
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.backoff_s = backoff_s
        #: Public addresses only unless the operator allowed more.
        self.egress = egress or EgressPolicy()
        self.secrets = secrets
        self.max_answer_bytes = max_answer_bytes
        self._mailer = mailer
        quiet_http_client_logs()
        self.counters = DispatchStats()
        self.failed_rounds = 0
        self.last_error = ""
        self._owns_db = owns_db
        self._in_flight: dict[int, int] = {}  # webhook id -> deliveries being sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()

    @property
    def mailer(self) -> Mailer:
        """The e-mail channel's mailer: the one given, else the process's SMTP settings
        (read on first use, so webhook-only dispatchers never need them)."""
        if self._mailer is None:
            self._mailer = Mailer.from_settings(get_settings())
        return self._mailer

    async def fan_out(self) -> int:
        async with self.db.transaction() as conn:
            status = await conn.execute(FAN_OUT)
        count = int(status.split()[-1])
        self.counters.fanned_out += count
        return count

    async def expire(self) -> int:
        """Give up deliveries whose last attempt never reported back."""
        async with self.db.connection() as conn:
            status = await conn.execute(deliveries.EXPIRE, self.max_attempts)
        count = int(status.split()[-1])
        if count:
            self.counters.given_up += count
            log.error("gave up %d webhook deliveries whose last attempt never reported", count)
        return count

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    def _saturated(self) -> bool:
        return self.in_flight >= self.max_in_flight or any(
            n >= self.per_webhook for n in self._in_flight.values()
        )

    async def start_due(self, client: httpx.AsyncClient) -> list[asyncio.Task[None]]:
        """Lease what the free slots allow and start each delivery as a task of its own."""
        async with self.db.transaction() as conn:
            leased = await deliveries.lease(
                conn,
                self._in_flight,
                self.per_webhook,
                self.max_in_flight - self.in_flight,
                self.max_attempts,
                self.lease_s,
            )
        started = []
        for row in leased:
            webhook_id = row["webhook_id"]
            self._in_flight[webhook_id] = self._in_flight.get(webhook_id, 0) + 1
            task = asyncio.create_task(self._run_one(client, dict(row)))
            self._tasks.add(task)
            started.append(task)
        return started

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """One round: lease what is due and wait for those deliveries (tests, one-shots)."""
        started = await self.start_due(client)
        if started:
            await asyncio.wait(started)
        return len(started)

    async def _run_one(self, client: httpx.AsyncClient, lease: dict[str, Any]) -> None:
        try:
            await self._deliver(client, lease)
        except Exception:
            # PostgreSQL away while loading or recording: the lease runs out and the
            # delivery is tried again (its attempt is counted already).
            log.exception(
                "webhook %s: delivery %s failed before its outcome was recorded",
                lease["webhook_id"],
                lease["id"],
            )
        finally:
            webhook_id = lease["webhook_id"]
            left = self._in_flight.get(webhook_id, 1) - 1
            if left > 0:
                self._in_flight[webhook_id] = left
            else:
                self._in_flight.pop(webhook_id, None)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._freed.set()

    async def _deliver(self, client: httpx.AsyncClient, lease: dict[str, Any]) -> None:
        async with self.db.connection() as conn:
            target = await conn.fetchrow(deliveries.TARGET, lease["webhook_id"], lease["event_id"])
            conflict = (
                await conflict_store.get(conn, target["tenant_id"], target["conflict_id"])
                if target
                else None
            )
        if target is None or conflict is None:
            return  # deleted meanwhile: the cascade removes the delivery
        for key in ("first_seen", "last_seen", "resolved_at", "state_changed_at", "created_at"):
            if conflict.get(key) is not None:
                conflict[key] = conflict[key].isoformat()
        max_attempts = self.max_attempts
        if target["channel"] == "email":
            error = await self._mail(dict(target), lease, conflict)
            if error == NOT_CONFIGURED:
                max_attempts = lease["attempts"]  # nothing to retry against: give up now
        else:
            error = await self._post_webhook(client, dict(target), lease, conflict)
        async with self.db.connection() as conn:
            if error is None:
                await conn.execute(deliveries.DELIVERED, lease["id"])
                self.counters.delivered += 1
                return
            self.counters.failed_attempts += 1
            status = await conn.fetchval(
                deliveries.FAILED,
                lease["id"],
                error,
                max_attempts,
                self.backoff_s,
                lease["attempts"],
            )
        if status == "failed":
            self.counters.given_up += 1
            # Channels are named by id: URLs, hosts and addresses stay out of the logs.
            log.error(
                "%s %s gave up on delivery %s after %d attempts (last error: %s)",
                "e-mail channel" if target["channel"] == "email" else "webhook",
                lease["webhook_id"],
                lease["id"],
                lease["attempts"],
                error.split(":", 1)[0],
            )

    async def _post_webhook(
        self,
        client: httpx.AsyncClient,
        target: Mapping[str, Any],
        lease: Mapping[str, Any],
        conflict: dict[str, Any],
    ) -> str | None:
        render = formats.slack if target["format"] == "slack" else formats.generic
        body = orjson.dumps(render(target["event"], lease["event_id"], conflict))
        headers = {
            "X-BGPO-Event": target["event"],
            "X-BGPO-Delivery": str(lease["id"]),
            "X-BGPO-Attempt": str(lease["attempts"]),
        }
        error = self._sign(target, lease, body, headers)
        if error is None:
            error = await self.post(client, target["url"], body, headers)
        return error

    async def _mail(
        self, target: Mapping[str, Any], lease: Mapping[str, Any], conflict: dict[str, Any]
    ) -> str | None:
        """One e-mail attempt (bounded by the mailer's timeout): None if the server took it."""
        if not self.mailer.enabled:
            return NOT_CONFIGURED
        recipient = str(target["url"]).removeprefix("mailto:")
        try:
            message = self.mailer.message(target["event"], conflict, recipient, lease["id"])
        except ValueError as exc:
            return f"Refused: {exc}"
        return await self.mailer.send(message)

    def _sign(
        self,
        target: Mapping[str, Any],
        lease: Mapping[str, Any],
        body: bytes,
        headers: dict[str, str],
    ) -> str | None:
        """Add the signature headers; what went wrong when the delivery cannot be signed."""
        sealed = target["secret_ciphertext"]
        if sealed is None:
            return (
                "Unsigned: this webhook has no signing secret (created before signing); "
                f"rotate it with POST /api/v1/webhooks/{lease['webhook_id']}/secret"
            )
        if self.secrets is None:
            return "Unsigned: the dispatcher has no key to decrypt signing secrets"
        try:
            secret = self.secrets.open(sealed)
        except ConfigurationError as exc:
            return f"Unsigned: {exc.message}"
        message_id = str(lease["id"])
        headers.update(signing.signature_headers(secret, message_id, int(time.time()), body))
        return None

    async def post(
        self, client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
    ) -> str | None:
        """One attempt, over after ``timeout_s`` in total (resolving the host included):
        None if the receiver took it, else what went wrong. ``body`` is bytes (sent as
        they are: the signature covers them) or a JSON value."""
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        try:
            async with asyncio.timeout(self.timeout_s):
                try:
                    target = await self.egress.check(url)
                except BgpoError as exc:
                    return f"Refused: {exc.message}"
                extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
                async with client.stream(
                    "POST",
                    target.url,
                    content=content,
                    headers={
                        **headers,
                        "Host": target.host_header,
                        "Content-Type": "application/json",
                    },
                    timeout=self.timeout_s,
                    follow_redirects=False,
                    extensions=extensions,
                ) as response:
                    answer = b""
                    async for chunk in response.aiter_bytes():
                        answer += chunk
                        if len(answer) >= self.max_answer_bytes:
                            break  # the rest is never read
                    if response.status_code < 300:
                        return None
                    if response.is_redirect:
                        return f"HTTP {response.status_code}: redirects are not followed"
                    text = answer[:200].decode(errors="replace")
                    return f"HTTP {response.status_code}: {text}"
        except TimeoutError:
            return f"Timeout: no complete answer within {self.timeout_s:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(
            max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight
        )
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
            try:
                await self._loop(client, stop)
            finally:
                await self._drain()

    async def _loop(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        next_round = 0.0
        while not stop.is_set():
            self._freed.clear()
            try:
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.interval_s
                    await self.fan_out()
                    await self.expire()
                await self.start_due(client)
                self.failed_rounds = 0
            except Exception as exc:
                self.failed_rounds += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("alert dispatch round failed; retrying")
            waits = [asyncio.ensure_future(stop.wait())]
            if self._saturated():  # a slot that frees up lets the next due delivery go
                waits.append(asyncio.ensure_future(self._freed.wait()))
            try:
                await asyncio.wait(
                    waits,
                    timeout=max(0.0, next_round - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def _drain(self) -> None:
        """Let deliveries in flight finish (each is bounded by ``timeout_s``), then cancel
        what is left: its lease runs out and it is tried again, the attempt counted."""
        if self._tasks:
            mail_s = self._mailer.timeout_s if self._mailer is not None else 0.0
            await asyncio.wait(set(self._tasks), timeout=max(self.timeout_s, mail_s) + 2.0)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def health(self) -> list[str]:
        if self.failed_rounds >= MAX_FAILED_ROUNDS:
            return [f"{self.failed_rounds} dispatch rounds failed in a row: {self.last_error}"]
        return []

    def stats(self) -> dict[str, Any]:
        return {
            **asdict(self.counters),
            "failed_rounds": self.failed_rounds,
            "in_flight": self.in_flight,
        }

    async def aclose(self) -> None:
        if self._owns_db:
            await self.db.close()
