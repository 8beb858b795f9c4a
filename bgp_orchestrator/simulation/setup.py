"""Puts a simulated world into a stack: its tenants and prefixes in PostgreSQL, its
ROAs and AS relationships in reference files the detectors load."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from bgp_orchestrator.simulation.world import World


def write_reference_files(world: World, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    vrps = directory / "vrps.csv"
    rels = directory / "as-rel.txt"
    vrps.write_text(world.vrp_csv())
    rels.write_text(
        "# simulated AS relationships (CAIDA serial-1)\n" + "\n".join(world.relationships) + "\n"
    )
    return vrps, rels


async def seed_tenants(conn: asyncpg.Connection, world: World) -> dict[str, int]:
    """Create (or keep) the world's tenants with ASN, upstreams and prefixes; slug -> id."""
    ids = {}
    async with conn.transaction():
        for t in world.tenants:
            tenant_id = await conn.fetchval(
                "INSERT INTO tenants (slug, name) VALUES ($1, $2) "
                "ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                t.slug,
                f"Simulated tenant {t.id}",
            )
            ids[t.slug] = tenant_id
            await conn.execute(
                "INSERT INTO autonomous_systems (tenant_id, asn, name) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                tenant_id,
                t.asn,
                f"{t.slug} backbone",
            )
            for upstream in t.upstreams:
                await conn.execute(
                    "INSERT INTO neighbor_asns (tenant_id, asn, relationship) "
                    "VALUES ($1, $2, 'upstream') ON CONFLICT DO NOTHING",
                    tenant_id,
                    upstream,
                )
            for prefix in t.prefixes:
                await conn.execute(
                    "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length) "
                    "VALUES ($1, $2::cidr, ARRAY[$3::bigint], 24) ON CONFLICT DO NOTHING",
                    tenant_id,
                    prefix,
                    t.asn,
                )
            await conn.execute(
                "INSERT INTO prefixes (tenant_id, prefix, origin_asns, max_length, announced) "
                "VALUES ($1, $2::cidr, '{}', 24, false) ON CONFLICT DO NOTHING",
                tenant_id,
                t.unannounced,
            )
    return ids
