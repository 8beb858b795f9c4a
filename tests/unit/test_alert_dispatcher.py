"""The dispatcher's attempt accounting, with a recording stand-in for PostgreSQL and an
in-process HTTP transport (no server; the real thing is in tests/integration)."""

from __future__ import annotations

import asyncio
import pickle
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.alerts.egress import EgressPolicy
from bgp_orchestrator.alerts.signing import SecretBox, new_secret
from bgp_orchestrator.errors import ConfigurationError

NOW = datetime(2026, 12, 3, tzinfo=UTC)
BOX = SecretBox([Fernet.generate_key()])
SECRET = new_secret()


async def public(host: str, port: int) -> list[str]:
    """A resolver that puts every host on one public address (the transport is in-process)."""
    return ["93.184.215.14"]


def dispatcher(db: Any, **kwargs: Any) -> AlertDispatcher:
    return AlertDispatcher(db, egress=EgressPolicy(resolver=public), secrets=BOX, **kwargs)


CONFLICT = {
    "id": 5,
    "type": "exact-prefix-hijack",
    "severity": "critical",
    "state": "ongoing",
    "tenant_id": 1,
    "prefix": "45.65.12.0/24",
    "origin_asn": 13335,
    "detail_key": "",
    "as_path": "3356 13335",
    "monitored_prefix": None,
    "peers": [],
    "peer_count": 0,
    "first_seen": NOW,
    "last_seen": NOW,
    "resolved_at": None,
    "state_changed_at": NOW,
    "details": "{}",
    "created_at": NOW,
}


class RecordingConnection:
    """Answers the dispatcher's queries for one due delivery (id 7, its third attempt) and
    records every statement, in order."""

    def __init__(self, log: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.log = log

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.log.append((sql, args))
        if "UPDATE webhook_deliveries" in sql:  # the lease
            return [{"id": 7, "webhook_id": 1, "event_id": 3, "attempts": 3}]
        return []

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        self.log.append((sql, args))
        if "FROM conflicts" in sql:
            return CONFLICT
        # The webhook and the event (one query or two)
        return {
            "tenant_id": 1,
            "url": "http://hook/",
            "format": "json",
            "channel": "webhook",
            "secret_ciphertext": BOX.seal(SECRET),
            "event": "opened",
            "conflict_id": 5,
        }

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.log.append((sql, args))
        return "pending"

    async def execute(self, sql: str, *args: Any) -> str:
        self.log.append((sql, args))
        return "UPDATE 1"


class RecordingDatabase:
    def __init__(self) -> None:
        self.log: list[tuple[str, tuple[Any, ...]]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[RecordingConnection]:
        yield RecordingConnection(self.log)

    transaction = connection


def _counts_attempt(sql: str) -> bool:
    """Does this statement's SET list increment ``attempts``?"""
    found = re.search(r"UPDATE\s+webhook_deliveries\b.*?\bSET\b(.*?)\b(FROM|WHERE)\b", sql, re.S)
    return bool(found and re.search(r"\battempts\s*=\s*(\w+\.)?attempts\s*\+\s*1", found[1]))


async def test_an_attempt_is_counted_when_leased_so_a_crash_mid_request_still_counts() -> None:
    db = RecordingDatabase()
    in_flight = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        in_flight.set()
        await asyncio.Event().wait()  # the process dies before the receiver answers
        raise AssertionError("unreachable")

    sender = dispatcher(db)
    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as client:
        round_ = asyncio.create_task(sender.deliver_due(client))
        await asyncio.wait_for(in_flight.wait(), 5)
        before_request = list(db.log)
        round_.cancel()  # the crash: nothing after this point reaches PostgreSQL
        with pytest.raises(asyncio.CancelledError):
            await round_
    assert any(_counts_attempt(sql) for sql, _ in before_request), (
        "no statement before the request counted the attempt: a crash now would retry "
        "this delivery forever without ever reaching the maximum"
    )
    assert db.log == before_request  # and no outcome was written


async def test_a_failed_attempt_is_recorded_against_the_attempt_it_leased() -> None:
    db = RecordingDatabase()

    async def refuse(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-BGPO-Delivery"] == "7"
        assert request.headers["X-BGPO-Attempt"] == "3"
        return httpx.Response(503, text="busy")

    sender = dispatcher(db, max_attempts=3)
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        assert await sender.deliver_due(client) == 1
    sql, args = db.log[-1]
    assert "attempts = $5" in sql  # fenced: a stale dispatcher cannot overwrite a newer one
    assert args == (7, "HTTP 503: busy", 3, 2.0, 3)
    assert sender.counters.failed_attempts == 1
    assert sender.stats()["in_flight"] == 0


def test_a_lease_shorter_than_an_attempt_is_refused_and_the_error_pickles() -> None:
    with pytest.raises(ConfigurationError) as caught:
        AlertDispatcher(RecordingDatabase(), timeout_s=5.0, lease_s=6.0)  # type: ignore[arg-type]
    assert caught.value.field == "lease_s"
    again = pickle.loads(pickle.dumps(caught.value))
    assert (again.code, again.value) == ("lease-too-short", 6.0)
