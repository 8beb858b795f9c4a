"""Rate-limit arithmetic, the Redis fallback, TLS detection for HSTS, and log redaction
(one function at a time; the real app, Redis and PostgreSQL are in tests/integration)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bgp_orchestrator import log_redaction
from bgp_orchestrator.api.ratelimit import Limit, LocalLimiter, RateLimiter
from bgp_orchestrator.api.security_headers import SecurityHeadersMiddleware
from bgp_orchestrator.auth.principal import Principal, Role
from bgp_orchestrator.errors import RateLimited

US = 1_000_000
KEY = Principal("apikey:7", 1, frozenset({Role.OPERATOR}), "api_key")


def test_a_minutes_worth_passes_at_once_then_one_per_interval() -> None:
    local = LocalLimiter()
    limit = [Limit("k", 3)]  # one every 20 s, three at once
    assert [local.check(limit, now_us=0) for _ in range(3)] == [0, 0, 0]
    assert local.check(limit, now_us=0) == 20 * US
    assert local.check(limit, now_us=5 * US) == 15 * US
    assert local.check(limit, now_us=20 * US) == 0
    assert local.check(limit, now_us=20 * US) == 20 * US


def test_a_refusal_by_one_limit_charges_none() -> None:
    local = LocalLimiter()
    key_a, key_b, tenant = Limit("a", 10), Limit("b", 10), Limit("t", 2)
    assert local.check([key_a, tenant], now_us=0) == 0
    assert local.check([key_b, tenant], now_us=0) == 0
    assert local.check([key_a, tenant], now_us=0) > 0  # the tenant is out
    assert local.check([key_a], now_us=0) == 0  # ... and key a was not charged for it:
    assert local._tats["a"] == 2 * 6 * US  # two requests' worth (6 s each), not three


class DeadRedis:
    """A redis.asyncio stand-in whose every call fails as an unreachable server does."""

    def register_script(self, script: str) -> Any:
        async def run(keys: list[str], args: list[int]) -> int:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

        return run

    async def aclose(self) -> None:
        return None


async def test_without_redis_each_replica_enforces_the_limits_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimiter(DeadRedis(), key_per_minute=2, tenant_per_minute=100)
    caplog.set_level(logging.WARNING)
    await limiter.check(KEY)
    await limiter.check(KEY)
    with pytest.raises(RateLimited) as caught:
        await limiter.check(KEY)
    assert caught.value.details["retry_after_s"] == 30
    assert not limiter.shared and limiter.redis_failures == 1  # not retried on every request
    warnings = [r.getMessage() for r in caplog.records if "rate limits" in r.getMessage()]
    assert len(warnings) == 1 and "on its own" in warnings[0]


async def test_limits_are_per_credential_and_per_tenant() -> None:
    limiter = RateLimiter(None, key_per_minute=5, tenant_per_minute=8)
    [cred, tenant] = limiter.limits_for(KEY)
    assert tenant.key.endswith("tenant:1")
    assert "apikey" not in cred.key  # hashed: callers' text never names a Redis key
    admin = Principal("alice", None, frozenset({Role.PLATFORM_ADMIN}), "token")
    assert len(limiter.limits_for(admin)) == 1  # no tenant, no tenant limit
    assert RateLimiter(None, 0, 0).limits_for(KEY) == []  # 0 = unlimited


def tls(middleware: SecurityHeadersMiddleware, **scope: Any) -> bool:
    return middleware._over_tls({"type": "http", "headers": [], **scope})


def test_hsts_only_over_tls_or_from_a_trusted_proxy() -> None:
    plain = SecurityHeadersMiddleware(app=None)  # type: ignore[arg-type]
    proxied = SecurityHeadersMiddleware(
        app=None,  # type: ignore[arg-type]
        trusted_proxies=[ipaddress.ip_network("10.0.0.0/8")],
    )
    https = [(b"x-forwarded-proto", b"https")]
    assert tls(plain, scheme="https", client=("203.0.113.9", 1))
    assert not tls(plain, scheme="http", client=("10.1.1.1", 1), headers=https)
    assert tls(proxied, scheme="http", client=("10.1.1.1", 1), headers=https)
    # A client outside the proxies cannot claim TLS by sending the header itself.
    assert not tls(proxied, scheme="http", client=("198.51.100.7", 1), headers=https)
    assert not tls(
        proxied, scheme="http", client=("10.1.1.1", 1), headers=[(b"x-forwarded-proto", b"http")]
    )
    assert proxied._csp("/docs") != proxied._csp("/api/v1/sessions")
    assert "frame-ancestors 'none'" in proxied._csp("/api/v1/sessions")


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("headers {'authorization': 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln'}", "eyJ"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        ("X-API-Key: bgpo_5f4dcc3b5aa765d61d8327deb882cf99", "5f4dcc3b"),
        ("x-api-key=plainkey123", "plainkey123"),
        ("key bgpo_5f4dcc3b5aa765d61d8327deb882cf99 revoked", "5f4dcc3b"),
        ("cannot reach postgresql://bgpo:hunter2@db:5432/bgpo", "hunter2"),
        ("redis://:s3cr3tpass@redis:6379/0 is down", "s3cr3tpass"),
        ('{"client_secret": "abc123xyz", "name": "portal"}', "abc123xyz"),
        ("password=hunter2&user=bob", "hunter2"),
        ("signing secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8G"),
    ],
)
def test_credentials_are_masked(text: str, leaked: str) -> None:
    cleaned = log_redaction.redact(text)
    assert leaked not in cleaned and log_redaction.MASK in cleaned


def test_ordinary_text_is_kept() -> None:
    for text in (
        "webhook 12 gave up on delivery 5 after 10 attempts (last error: HTTP 503)",
        "tenant acme: 5 tokens of work, prefix 192.0.2.0/24, AS64500",
        "GET /api/v1/sessions?limit=10 200",
    ):
        assert log_redaction.redact(text) == text


@pytest.fixture
def redacting() -> Iterator[None]:
    log_redaction.uninstall()
    log_redaction.install()
    yield
    log_redaction.uninstall()


def test_installed_every_record_is_cleaned_whatever_writes_it(
    redacting: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("some.library")
    caplog.set_level(logging.INFO)
    log.info("request headers: %s", {"Authorization": "Bearer abcdefghijkl.mnop"})
    try:
        raise RuntimeError("connect to postgresql://bgpo:hunter2@db/bgpo failed")
    except RuntimeError:
        log.exception("API key bgpo_0123456789abcdef did not work")
    handler = logging.StreamHandler()
    text = "\n".join(handler.format(r) for r in caplog.records)
    for secret in ("abcdefghijkl", "hunter2", "0123456789abcdef"):
        assert secret not in text
    assert "RuntimeError" in text and "Traceback" in text  # the traceback itself is kept
