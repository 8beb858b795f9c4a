"""Configuration conflict checks, run inside the write transaction.

Each check is one small function that raises :class:`ConfigConflict` (HTTP 409)
with an explanation an operator can act on, or :class:`InvalidInput` (HTTP 422)
for a value that cannot be right whatever else is stored.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import asyncpg

from bgp_orchestrator.errors import ConfigConflict, InvalidInput
from bgp_orchestrator.model.net import family, max_prefix_length
from bgp_orchestrator.peering import repository as repo


def check_session_addresses(session: dict[str, Any]) -> None:
    """Cross-field rules of a session that need no database."""
    peer = ipaddress.ip_address(session["peer_address"])
    if peer.is_multicast or peer.is_unspecified or peer.is_loopback:
        raise InvalidInput(
            "invalid-peer-address",
            f"{peer} is not a unicast host address a BGP neighbour can have",
            "peer_address",
            str(peer),
        )
    local = session.get("local_address")
    if local is not None:
        local_ip = ipaddress.ip_address(local)
        if local_ip.version != peer.version:
            raise InvalidInput(
                "address-family-mismatch",
                f"local_address {local_ip} is IPv{local_ip.version} "
                f"but peer_address {peer} is IPv{peer.version}",
                "local_address",
                local,
            )
        if local_ip == peer:
            raise InvalidInput(
                "local-equals-peer",
                "local_address and peer_address are the same",
                "local_address",
                local,
            )
    lan = session.get("peering_lan")
    if lan is not None:
        net = ipaddress.ip_network(lan)
        if net.version != peer.version:
            raise InvalidInput(
                "address-family-mismatch",
                f"peering_lan {net} is IPv{net.version} but peer_address is IPv{peer.version}",
                "peering_lan",
                lan,
            )
        for name, addr in (("peer_address", peer), ("local_address", local)):
            if addr is None:
                continue
            ip = ipaddress.ip_address(addr)
            if ip not in net:
                raise InvalidInput(
                    "address-outside-lan",
                    f"{name} {ip} is not inside peering_lan {net}",
                    name,
                    str(ip),
                )
            if (
                isinstance(net, ipaddress.IPv4Network)
                and net.prefixlen <= 30
                and ip in (net.network_address, net.broadcast_address)
            ):
                raise InvalidInput(
                    "address-not-host",
                    f"{name} {ip} is the network or broadcast address of {net}",
                    name,
                    str(ip),
                )
    if session.get("ixp_name") and session.get("interconnect") != "ixp":
        raise InvalidInput(
            "ixp-name-without-ixp",
            "ixp_name is only meaningful for interconnect 'ixp'",
            "ixp_name",
            session.get("ixp_name"),
        )


def check_prefix_fields(prefix: dict[str, Any]) -> None:
    net = ipaddress.ip_network(prefix["prefix"])
    longest = max_prefix_length(family(net))
    max_length = prefix["max_length"]
    if not net.prefixlen <= max_length <= longest:
        raise InvalidInput(
            "invalid-max-length",
            f"max_length {max_length} must lie between the prefix length {net.prefixlen} "
            f"and {longest} for {net}",
            "max_length",
            max_length,
        )
    if prefix["announced"] and not prefix["origin_asns"]:
        raise InvalidInput(
            "origins-required",
            f"{net} is marked as announced, so name at least one authorised origin ASN",
            "origin_asns",
            [],
        )
    if len(set(prefix["origin_asns"])) != len(prefix["origin_asns"]):
        raise InvalidInput(
            "duplicate-origins",
            "origin_asns lists an ASN twice",
            "origin_asns",
            prefix["origin_asns"],
        )
    check_prefix_neighbours(prefix)


def check_prefix_neighbours(prefix: dict[str, Any]) -> None:
    """A prefix's own upstreams and peers: each named once, none also an origin."""
    upstreams = prefix.get("upstream_asns") or []
    peers = prefix.get("peer_asns") or []
    for field, asns in (("upstream_asns", upstreams), ("peer_asns", peers)):
        if len(set(asns)) != len(asns):
            raise InvalidInput("duplicate-neighbours", f"{field} lists an ASN twice", field, asns)
        origins = set(asns) & set(prefix["origin_asns"])
        if origins:
            raise InvalidInput(
                "neighbour-is-origin",
                f"{field} names AS{min(origins)}, an authorised origin of the prefix: a "
                "network is not its own first hop",
                field,
                asns,
            )
    both = set(upstreams) & set(peers)
    if both:
        raise InvalidInput(
            "neighbour-twice",
            f"AS{min(both)} is in both upstream_asns and peer_asns; name it once",
            "peer_asns",
            peers,
        )


async def check_local_asn_owned(conn: asyncpg.Connection, tenant_id: int, local_asn: int) -> None:
    owned = await conn.fetch(
        "SELECT asn FROM autonomous_systems WHERE tenant_id = $1 ORDER BY asn", tenant_id
    )
    asns = [r["asn"] for r in owned]
    if local_asn not in asns:
        listed = ", ".join(f"AS{a}" for a in asns) or "none registered yet"
        raise ConfigConflict(
            "local-asn-not-owned",
            f"local_asn AS{local_asn} is not one of this tenant's ASNs ({listed}); "
            "register it with POST /api/v1/asns first",
            "local_asn",
            local_asn,
            {"tenant_asns": asns},
        )


async def check_session_unique(
    conn: asyncpg.Connection, tenant_id: int, session: dict[str, Any], exclude_id: int | None
) -> None:
    existing = await conn.fetchrow(
        "SELECT id, local_asn, peer_asn FROM peering_sessions "
        "WHERE tenant_id = $1 AND peer_address = $2::inet AND id IS DISTINCT FROM $3",
        tenant_id,
        session["peer_address"],
        exclude_id,
    )
    if existing is None:
        return
    addr = session["peer_address"]
    if (
        existing["local_asn"] == session["local_asn"]
        and existing["peer_asn"] == session["peer_asn"]
    ):
        raise ConfigConflict(
            "session-exists",
            f"the session AS{session['local_asn']} -> AS{session['peer_asn']} at {addr} "
            f"already exists (id {existing['id']}); update it instead of creating it again",
            "peer_address",
            addr,
            {"existing_session_id": existing["id"]},
        )
    raise ConfigConflict(
        "peer-address-in-use",
        f"peer address {addr} is already used by session {existing['id']} "
        f"(AS{existing['local_asn']} -> AS{existing['peer_asn']}); one address is one neighbour",
        "peer_address",
        addr,
        {"existing_session_id": existing["id"]},
    )


async def check_max_prefixes(conn: asyncpg.Connection, session: dict[str, Any]) -> None:
    limit = session.get("max_prefixes")
    if limit is None:
        return
    afi = ipaddress.ip_address(session["peer_address"]).version
    seen = await repo.announced_prefix_count(conn, session["peer_asn"], afi)
    if seen is None or limit >= seen["prefix_count"]:
        return
    count = seen["prefix_count"]
    raise ConfigConflict(
        "max-prefix-below-announced",
        f"max_prefixes {limit} is below the {count} IPv{afi} prefixes AS{session['peer_asn']} "
        f"already announces (seen by {seen['source']} at {seen['observed_at']:%Y-%m-%d %H:%M}Z); "
        f"the session would be torn down as soon as it is established. "
        f"Set max_prefixes to at least {count}",
        "max_prefixes",
        limit,
        {"announced_prefixes": count, "source": seen["source"]},
    )


async def check_prefix_claims(
    conn: asyncpg.Connection, tenant_id: int, prefix: dict[str, Any], exclude_id: int | None
) -> None:
    rows = await conn.fetch(
        "SELECT id, tenant_id, origin_asns FROM prefixes "
        "WHERE prefix = $1::cidr AND id IS DISTINCT FROM $2",
        prefix["prefix"],
        exclude_id,
    )
    for row in rows:
        if row["tenant_id"] == tenant_id:
            raise ConfigConflict(
                "prefix-exists",
                f"{prefix['prefix']} is already registered (id {row['id']}); update it instead",
                "prefix",
                prefix["prefix"],
                {"existing_prefix_id": row["id"]},
            )
        theirs = sorted(row["origin_asns"])
        ours = sorted(prefix["origin_asns"])
        if theirs != ours:
            # Nothing of the other tenant is named: not who it is, nor its origins.
            raise ConfigConflict(
                "prefix-claimed-with-other-origins",
                f"{prefix['prefix']} is already claimed by another tenant with different "
                f"authorised origins than {', '.join(f'AS{a}' for a in ours) or 'none'}; one "
                "prefix cannot have two sets of authorised origins (if the prefix is yours, "
                "ask the platform operator to resolve the claim)",
                "origin_asns",
                ours,
            )


async def check_asn_unregistered(conn: asyncpg.Connection, tenant_id: int, asn: int) -> None:
    owner = await conn.fetchval("SELECT tenant_id FROM autonomous_systems WHERE asn = $1", asn)
    if owner is None:
        return
    if owner == tenant_id:
        raise ConfigConflict(
            "asn-exists", f"AS{asn} is already registered for this tenant", "asn", asn
        )
    raise ConfigConflict(
        "asn-registered-elsewhere",
        f"AS{asn} is already registered to another tenant; an ASN belongs to one network",
        "asn",
        asn,
    )


async def check_asn_unused(conn: asyncpg.Connection, tenant_id: int, asn: int) -> None:
    ids = await conn.fetch(
        "SELECT id FROM peering_sessions WHERE tenant_id = $1 AND local_asn = $2 "
        "ORDER BY id LIMIT 10",
        tenant_id,
        asn,
    )
    if ids:
        raise ConfigConflict(
            "asn-in-use",
            f"AS{asn} is the local ASN of session(s) {', '.join(str(r['id']) for r in ids)}; "
            "delete or move those sessions first",
            "asn",
            asn,
            {"session_ids": [r["id"] for r in ids]},
        )


async def check_neighbor_unique(conn: asyncpg.Connection, tenant_id: int, asn: int) -> None:
    existing = await conn.fetchval(
        "SELECT id FROM neighbor_asns WHERE tenant_id = $1 AND asn = $2", tenant_id, asn
    )
    if existing is not None:
        raise ConfigConflict(
            "neighbor-exists",
            f"AS{asn} is already a neighbour of this tenant (id {existing}); update it instead",
            "asn",
            asn,
            {"existing_neighbor_id": existing},
        )
