"""The issuer's signing keys (JWKS), cached and refetched when an unknown key appears.

The keys are found through the issuer's discovery document
(``/.well-known/openid-configuration`` → ``jwks_uri``), kept for ``ttl_s`` and fetched
again early when a token names a key id the cache lacks (the issuer rotated its keys).
Forced refetches are spaced by ``min_refetch_s`` so that a flood of tokens with made-up
key ids cannot turn the API into a client hammering the issuer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bgp_orchestrator.errors import ServiceUnavailable


class JwksCache:
    def __init__(
        self,
        issuer: str,
        ttl_s: float = 300.0,
        min_refetch_s: float = 5.0,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.ttl_s = ttl_s
        self.min_refetch_s = min_refetch_s
        self._timeout_s = timeout_s
        self._transport = transport
        self._keys: KeySet | None = None
        self._jwks_uri: str | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        #: How many times the keys were fetched (for tests and metrics).
        self.fetches = 0

    async def keys(self, kid: str | None = None) -> KeySet:
        """The current key set; refetched when stale, or when ``kid`` is not in it."""
        now = time.monotonic()
        keys = self._keys
        if keys is not None and now - self._fetched_at < self.ttl_s and self._has(keys, kid):
            return keys
        async with self._lock:
            keys = self._keys
            fresh = time.monotonic() - self._fetched_at
            if keys is not None and fresh < self.ttl_s and self._has(keys, kid):
                return keys
            if keys is not None and fresh < self.min_refetch_s:
                return keys  # refetched a moment ago: the kid is simply unknown
            self._keys = await self._fetch()
            self._fetched_at = time.monotonic()
            return self._keys

    async def refresh(self) -> KeySet | None:
        """Fetch the keys again now (a kid-less token did not verify: the issuer may have
        rotated); None when they were fetched less than ``min_refetch_s`` ago."""
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.min_refetch_s:
                return None
            self._keys = await self._fetch()
            self._fetched_at = time.monotonic()
            return self._keys

    @staticmethod
    def _has(keys: KeySet, kid: str | None) -> bool:
        if kid is None:
            return True
        return any(key.kid == kid for key in keys.keys)

    async def _fetch(self) -> KeySet:
        async with httpx.AsyncClient(
            timeout=self._timeout_s, transport=self._transport, follow_redirects=False
        ) as client:
            try:
                if self._jwks_uri is None:
                    self._jwks_uri = str(
                        (await self._get_json(client, "/.well-known/openid-configuration"))[
                            "jwks_uri"
                        ]
                    )
                document = await self._get_json(client, self._jwks_uri)
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (httpx.HTTPError, KeyError, ValueError, TypeError, JoseError) as exc:
                self._jwks_uri = None
                raise ServiceUnavailable(
                    "oidc-keys-unavailable",
                    f"cannot read the signing keys of the OIDC issuer {self.issuer}: {exc}",
                ) from exc
        self.fetches += 1
        return keys

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        if url.startswith("/"):
            url = self.issuer + url
        response = await client.get(url)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return body
