"""Request rate limits per credential (API key or signed-in user) and per tenant.

Each limit is "N requests per minute, a minute's worth at once": a generic cell
rate algorithm (GCRA) keeps one timestamp per key — the theoretical arrival time
of the next request — in Redis, so every API replica shares the same budget.
One Lua script checks all the caller's limits and charges them only when all
allow the request, on Redis' clock (replicas' clocks do not matter). A refused
request answers 429 with ``Retry-After``.

Redis away: each replica enforces the same limits on its own (in memory) until
Redis answers again (tried every ``retry_redis_s``), so across N replicas a
caller may get up to N times its limit, never unlimited; the switch is logged
once each way.

Wiring: ``enforce_rate_limit`` reads ``request.state.principal`` (set by the
authentication dependency) and does nothing when it is absent. Run it after
authentication, e.g. ``await enforce_rate_limit(request)`` at the end of the
auth dependency, or ``Depends(enforce_rate_limit)`` after it in a route's
``dependencies``. The app's lifespan puts a :class:`RateLimiter` in
``app.state.rate_limiter``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from bgp_orchestrator.errors import RateLimited
from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)

#: KEYS: one per limit. ARGV: pairs (emission interval, tolerance) in microseconds.
#: Returns 0 (allowed, all charged) or the microseconds until the request would pass.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local wait = 0
for i = 1, #KEYS do
  local emission = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  if tat - now > tolerance then
    wait = math.max(wait, tat - now - tolerance)
  end
  tats[i] = tat + emission
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', tats[i]),
             'PX', math.ceil((tats[i] - now) / 1000) + 1000)
end
return 0
"""

US = 1_000_000


@dataclass(frozen=True)
class Limit:
    """``per_minute`` requests a minute for ``key``, a minute's worth at once."""

    key: str
    per_minute: int

    @property
    def emission_us(self) -> int:
        return 60 * US // self.per_minute

    @property
    def tolerance_us(self) -> int:
        return self.emission_us * (self.per_minute - 1)


class LocalLimiter:
    """The same algorithm in this process's memory (the fallback while Redis is away)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._tats: dict[str, int] = {}

    def check(self, limits: list[Limit], now_us: int | None = None) -> int:
        now = now_us if now_us is not None else time.monotonic_ns() // 1000
        if len(self._tats) > self.max_keys:  # forget keys whose budget is full again
            self._tats = {k: v for k, v in self._tats.items() if v > now}
        wait = 0
        tats = []
        for limit in limits:
            tat = max(self._tats.get(limit.key, 0), now)
            if tat - now > limit.tolerance_us:
                wait = max(wait, tat - now - limit.tolerance_us)
            tats.append(tat + limit.emission_us)
        if wait:
            return wait
        for limit, tat in zip(limits, tats, strict=True):
            self._tats[limit.key] = tat
        return 0


class RateLimiter:
    """Per-credential and per-tenant limits, shared through Redis (``redis`` is a
    ``redis.asyncio`` client, or None to limit in this process only)."""

    def __init__(
        self,
        redis: Any,
        key_per_minute: int,
        tenant_per_minute: int,
        *,
        prefix: str = "bgpo:ratelimit:",
        retry_redis_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.key_per_minute = key_per_minute
        self.tenant_per_minute = tenant_per_minute
        self.prefix = prefix
        self.retry_redis_s = retry_redis_s
        self.local = LocalLimiter()
        self._script: Any = redis.register_script(GCRA) if redis is not None else None
        self._redis_down_until = 0.0
        self.redis_failures = 0
        self._was_shared = True

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any) -> RateLimiter:
        return cls(redis, settings.rate_limit_key_per_minute, settings.rate_limit_tenant_per_minute)

    def limits_for(self, principal: Any) -> list[Limit]:
        out = []
        if self.key_per_minute > 0:
            # Hashed: subjects are ids, but never put caller-chosen text in a key name.
            who = f"{principal.credential}:{principal.subject}".encode()
            digest = hashlib.sha256(who).hexdigest()[:32]
            out.append(Limit(f"{self.prefix}cred:{digest}", self.key_per_minute))
        if self.tenant_per_minute > 0 and principal.tenant_id is not None:
            out.append(Limit(f"{self.prefix}tenant:{principal.tenant_id}", self.tenant_per_minute))
        return out

    @property
    def shared(self) -> bool:
        """Whether limits are currently enforced through Redis (else per replica)."""
        return self._script is not None and time.monotonic() >= self._redis_down_until

    async def wait_us(self, limits: list[Limit]) -> int:
        """0 when the request may pass (and is charged), else microseconds to wait."""
        if not limits:
            return 0
        if self.shared:
            args: list[int] = []
            for limit in limits:
                args += [limit.emission_us, limit.tolerance_us]
            try:
                wait = int(await self._script(keys=[lim.key for lim in limits], args=args))
            except Exception as exc:  # ConnectionError, TimeoutError, a failing server
                self.redis_failures += 1
                self._redis_down_until = time.monotonic() + self.retry_redis_s
                if self._was_shared:
                    log.warning(
                        "rate limits: Redis does not answer (%s); each API replica enforces "
                        "them on its own until it does",
                        type(exc).__name__,
                    )
                self._was_shared = False
            else:
                if not self._was_shared:
                    log.warning("rate limits: Redis answers again; limits are shared")
                self._was_shared = True
                return wait
        return self.local.check(limits)

    async def check(self, principal: Any) -> None:
        """Raise :class:`RateLimited` when ``principal`` is over one of its limits."""
        wait = await self.wait_us(self.limits_for(principal))
        if wait > 0:
            retry_after = max(1, math.ceil(wait / US))
            raise RateLimited(
                "rate-limited",
                f"too many requests; retry in {retry_after} s (limits: "
                f"{self.key_per_minute}/min per credential, {self.tenant_per_minute}/min per "
                "tenant)",
                details={"retry_after_s": retry_after},
            )

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def open_rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter on the configured (or embedded) Redis; connects on first use, and
    gives up on an unresponsive Redis within half a second."""
    import redis.asyncio as aioredis

    from bgp_orchestrator.local.redis import EmbeddedRedis

    url = (
        settings.redis_url.get_secret_value() if settings.redis_url else EmbeddedRedis(settings).url
    )
    client = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RateLimiter.from_settings(settings, client)


async def enforce_rate_limit(request: Request) -> None:
    """FastAPI dependency (or a plain call after authentication): 429 when the caller in
    ``request.state.principal`` is over its limits; nothing without a principal or a
    limiter."""
    principal = getattr(request.state, "principal", None)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if principal is None or limiter is None:
        return
    await limiter.check(principal)
