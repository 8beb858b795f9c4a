"""Which flap-model sessions a tenant may read: those of its own peering sessions.

The flap model names a session ``collector|peer address`` (the collector that saw
its updates: ``exabgp`` for the tenant's own routers, a RIS collector, ``sim`` for
simulated ones). It is a tenant's when one of its peering sessions in PostgreSQL has
that peer address, whichever collector saw it (as usage counts a window's updates
for the tenants with a session to that peer address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import asyncpg

from bgp_orchestrator.errors import NotFound


def peer_address(session_id: str) -> str | None:
    """The normalised peer address of ``collector|peer address`` (None: not that shape)."""
    collector, sep, address = session_id.rpartition("|")
    if not sep or not collector:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    # A zone (fe80::1%eth0) is no address of a peering session (inet has none).
    return None if getattr(ip, "scope_id", None) else str(ip)


async def owned_sessions(
    conn: asyncpg.Connection, tenant_id: int | None, session_ids: Sequence[str]
) -> set[str]:
    """The ids among ``session_ids`` that are ``tenant_id``'s sessions (None: the
    platform, which may read every session)."""
    if tenant_id is None:
        return set(session_ids)
    addresses = {sid: peer_address(sid) for sid in session_ids}
    wanted = sorted({a for a in addresses.values() if a is not None})
    if not wanted:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT host(peer_address) AS address FROM peering_sessions "
        "WHERE tenant_id = $1 AND peer_address = ANY($2::inet[])",
        tenant_id,
        wanted,
    )
    mine = {r["address"] for r in rows}
    return {sid for sid, address in addresses.items() if address in mine}


def not_yours(sessions: Sequence[str]) -> NotFound:
    """The 404 of a request none of whose sessions is the caller's: the same whether
    such a session exists elsewhere or not."""
    if len(sessions) == 1:
        detail = f"no session {sessions[0]!r} among your peering sessions"
    else:
        detail = f"none of the {len(sessions)} sessions is among your peering sessions"
    return NotFound("session-not-found", detail, "sessions", sessions[0])
