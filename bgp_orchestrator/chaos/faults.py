"""The faults: kill a Serve replica, stop and start an embedded service, a webhook
receiver that hangs, and 100 concurrent API clients that count failed requests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bgp_orchestrator.errors import ConfigurationError, ServiceUnavailable
from bgp_orchestrator.local.services import EmbeddedService, embedded_services
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack.serve_client import ServeClient

# --- Serve replicas ----------------------------------------------------------------------


def _deployment(client: ServeClient, app: str, deployment: str) -> dict[str, Any]:
    apps = client.applications()
    try:
        found: dict[str, Any] = apps[app]["deployments"][deployment]
    except KeyError:
        raise ServiceUnavailable(
            "chaos-no-deployment", f"Serve runs no deployment {app}/{deployment}; is the stack up?"
        ) from None
    return found


def running_replicas(client: ServeClient, app: str, deployment: str) -> dict[str, int]:
    """replica id -> pid of the deployment's RUNNING replicas."""
    dep = _deployment(client, app, deployment)
    return {
        r["replica_id"]: int(r["pid"])
        for r in dep.get("replicas", [])
        if r.get("state") == "RUNNING" and r.get("pid")
    }


def target_replicas(client: ServeClient, app: str, deployment: str) -> int:
    return int(_deployment(client, app, deployment).get("target_num_replicas") or 1)


def kill_replica(client: ServeClient, app: str, deployment: str) -> str:
    """SIGKILL one RUNNING replica's process (as the kernel's OOM killer would)."""
    replicas = running_replicas(client, app, deployment)
    if not replicas:
        raise ServiceUnavailable(
            "chaos-no-replica", f"{app}/{deployment} has no running replica to kill"
        )
    victim, pid = sorted(replicas.items())[0]
    os.kill(pid, signal.SIGKILL)
    return victim


async def wait_replaced(
    client: ServeClient, app: str, deployment: str, victim: str, timeout_s: float = 120.0
) -> float | None:
    """Seconds until the deployment has its target of RUNNING replicas, the victim not
    among them (None: not within ``timeout_s``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            replicas = await asyncio.to_thread(running_replicas, client, app, deployment)
            target = await asyncio.to_thread(target_replicas, client, app, deployment)
            if victim not in replicas and len(replicas) >= target:
                return time.monotonic() - started
        except ServiceUnavailable:
            pass
        await asyncio.sleep(0.5)
    return None


# --- embedded services -------------------------------------------------------------------


def embedded(settings: Settings, name: str) -> EmbeddedService:
    """The embedded service ``name`` `bgpo up` runs; refused for a configured one.

    With a configured (external) server the suite cannot stop it, and cutting its
    traffic would need the stack to reach it through a proxy the suite started
    before `bgpo up`: the experiment is refused instead of faking the fault."""
    for svc in embedded_services(settings):
        if svc.name == name:
            if not svc.running():
                raise ServiceUnavailable(
                    "chaos-service-down", f"the embedded {svc.title} is not running; `bgpo up`"
                )
            return svc
    setting = {
        "postgres": "BGPO_DATABASE_URL",
        "redis": "BGPO_REDIS_URL",
        "kafka": "BGPO_KAFKA_BOOTSTRAP_SERVERS",
    }[name]
    raise ConfigurationError(
        "chaos-needs-embedded",
        f"this experiment stops the embedded {name}, but {setting} points at a configured "
        "server the suite will not stop; run it on a stack with embedded services (unset "
        f"{setting})",
    )


# --- webhook receivers -------------------------------------------------------------------


@dataclass
class Delivery:
    delivery_id: str
    event_id: int
    event: str
    conflict_id: int
    at: float


@dataclass
class Receiver:
    """A plain HTTP server that records webhook deliveries; ``hang`` makes it accept
    requests and never answer them (until ``heal``)."""

    hang: bool = False
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _healed: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        if not self.hang:
            self._healed.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def heal(self) -> None:
        self._healed.set()

    async def close(self) -> None:
        self._healed.set()
        if self._server is not None:
            self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                # hanging: hold the request (the dispatcher times out and retries later)
                await self._healed.wait()
                if reader.at_eof():
                    return  # the dispatcher gave up on this attempt: not delivered
                payload = orjson.loads(body) if body else {}
                self.deliveries.append(
                    Delivery(
                        headers.get("x-bgpo-delivery", ""),
                        int(payload.get("event_id", 0)),
                        str(payload.get("event", "")),
                        int((payload.get("conflict") or {}).get("id", 0)),
                        time.monotonic(),
                    )
                )
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            return  # closed by close(): a connection server handler ends quietly
        finally:
            if task is not None:
                self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


# --- API clients -------------------------------------------------------------------------


@dataclass
class Hammer:
    """``clients`` concurrent clients reading conflicts from the API back to back."""

    url: str
    tenant: str
    clients: int = 100
    ok: int = 0
    failed: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        self._client = httpx.AsyncClient(base_url=self.url, timeout=15.0, limits=limits)
        self._tasks = [asyncio.create_task(self._one()) for _ in range(self.clients)]

    async def _one(self) -> None:
        headers = {"X-Tenant": self.tenant}
        while not self._stop.is_set():
            try:
                r = await self._client.get(
                    "/api/v1/conflicts", params={"limit": 20}, headers=headers
                )
                if r.status_code == 200:
                    self.ok += 1
                    continue
                why = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                why = type(exc).__name__
            self.failed += 1
            self.failures.append((time.monotonic(), why))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
