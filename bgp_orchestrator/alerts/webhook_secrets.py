"""Issuing a webhook's signing secret: generated, stored encrypted, returned once."""

from __future__ import annotations

import asyncpg

from bgp_orchestrator.alerts.signing import SecretBox, new_secret


async def issue(conn: asyncpg.Connection, box: SecretBox, tenant_id: int, webhook_id: int) -> str:
    """A new secret for the tenant's webhook (replacing any old one), or "" when the
    tenant has no such webhook. The plain secret exists only in the return value."""
    secret = new_secret()
    status = await conn.execute(
        "UPDATE webhooks SET secret_ciphertext = $3, secret_rotated_at = now() "
        "WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        webhook_id,
        box.seal(secret),
    )
    return secret if status == "UPDATE 1" else ""
