"""The reference files a detector reads (ASPA here) load, reload on change, and a bad
file keeps the previous data with the problem reported."""

from __future__ import annotations

import os
from pathlib import Path

from bgp_orchestrator.detection.loader import ReferenceLoader
from bgp_orchestrator.reference.aspa import AspaState
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.storage.database import Database


def _write(path: Path, body: str, mtime: float) -> None:
    path.write_text(body)
    os.utime(path, (mtime, mtime))


async def test_aspa_file_loads_reloads_and_survives_a_bad_version(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "rpki.json"
    _write(path, '{"aspas": [{"customer_asid": 200100, "providers": [3356]}]}', 1_000)
    loader = ReferenceLoader(Settings(database_url=database_url, data_dir=tmp_path, aspa_file=path))
    async with db.connection() as conn:
        assert await loader.refresh(conn)
        first = loader.reference.aspas
        assert first is not None and first.providers(200100) == frozenset({3356})
        assert not await loader.refresh(conn)  # nothing changed: the same snapshot

        _write(path, '{"aspas": [{"customer_asid": 200100, "providers": [1299]}]}', 2_000)
        assert await loader.refresh(conn)
        second = loader.reference.aspas
        assert second is not None
        assert second.verify([1299, 200100], "upstream").state is AspaState.VALID

        _write(path, '{"aspas": [{"customer_asid": "nope", "providers": []}]}', 3_000)
        await loader.refresh(conn)
        assert loader.reference.aspas is second  # the previous data stays in use
        assert any("is not an ASN" in e for e in loader.errors)


async def test_a_prefix_rule_reaches_the_detectors(
    db: Database, database_url: str, tmp_path: Path, clean: None
) -> None:
    from bgp_orchestrator.peering.service import PeeringService, TenantService

    tenant = await TenantService(db).create("rules", "Rules")
    svc = PeeringService(db, tenant["id"])
    for prefix, upstreams in (("193.0.20.0/22", [200100, 6939]), ("45.65.12.0/24", [])):
        await svc.create_prefix(
            {
                "prefix": prefix,
                "origin_asns": [200701],
                "max_length": 24,
                "announced": True,
                "description": "",
                "upstream_asns": upstreams,
                "peer_asns": [],
            }
        )
    loader = ReferenceLoader(Settings(database_url=database_url, data_dir=tmp_path))
    async with db.connection() as conn:
        await loader.refresh(conn)
    carriers = {m.prefix: m.carriers for m in loader.reference.monitored.items}
    assert carriers == {"193.0.20.0/22": frozenset({200100, 6939}), "45.65.12.0/24": None}
