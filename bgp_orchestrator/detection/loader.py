"""Builds the reference snapshot from PostgreSQL and the operator's files, reloading on change.

The inventory is re-read when ``reference_version`` moves (triggers bump it on
every change to tenants, ASNs, neighbours and prefixes); the VRP and AS
relationship files when their modification time changes. A file that fails
validation is reported and the previous data stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bgp_orchestrator.detection.reference import (
    DetectionSettings,
    Reference,
    Tenant,
    monitored_from_rows,
)
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.reference import aspa, asrel, vrps
from bgp_orchestrator.settings import Settings

log = logging.getLogger(__name__)


def detection_settings(settings: Settings) -> DetectionSettings:
    return DetectionSettings(
        visibility_share=settings.visibility_share,
        visibility_min_peers=settings.visibility_min_peers,
        global_observations=settings.global_observations,
        leak_min_confidence=settings.leak_min_confidence,
        leak_window_s=settings.leak_window_s,
        leak_baseline_s=settings.leak_baseline_s,
    )


@dataclass
class _FileCache:
    path: Path | None
    mtime: float | None = None
    data: object | None = None
    errors: list[str] = field(default_factory=list)

    def load(self, loader: object) -> object | None:
        if self.path is None:
            return None
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            self._error(f"cannot read {self.path}: {exc.strerror}")
            return self.data
        if mtime != self.mtime:
            try:
                self.data = loader(self.path)  # type: ignore[operator]
                self.mtime = mtime
                log.info("loaded %s", self.path)
            except ConfigurationError as exc:
                self._error(exc.message)
        return self.data

    def _error(self, message: str) -> None:
        if not self.errors or self.errors[-1] != message:
            log.error("reference file problem, keeping the previous data: %s", message)
        self.errors.append(message)
        del self.errors[:-20]


class ReferenceLoader:
    def __init__(self, settings: Settings) -> None:
        self.detection = detection_settings(settings)
        self._vrps = _FileCache(settings.rpki_vrp_file)
        self._rels = _FileCache(settings.as_relationships_file)
        self._aspas = _FileCache(settings.aspa_file)
        self._db_version: int | None = None
        self.reference = Reference(settings=self.detection)

    @property
    def errors(self) -> list[str]:
        return [*self._vrps.errors, *self._rels.errors, *self._aspas.errors]

    def _load_relationships(self, path: Path) -> asrel.Relationships:
        rels = asrel.load(path)
        # prepared here, once, not by the first route a detector judges
        rels.heavy_peers(self.detection.open_peering_degree)
        return rels

    async def refresh(self, conn: asyncpg.Connection) -> bool:
        """Reload what changed; True if the snapshot was replaced."""
        version = int(await conn.fetchval("SELECT version FROM reference_version WHERE id = 1"))
        # Files of hundreds of thousands of lines: parsed in a thread, not on the loop.
        vrp_index = await asyncio.to_thread(self._vrps.load, lambda p: vrps.VrpIndex(vrps.load(p)))
        rels = await asyncio.to_thread(self._rels.load, self._load_relationships)
        aspas = await asyncio.to_thread(self._aspas.load, lambda p: aspa.AspaIndex(aspa.load(p)))
        files = (self._vrps.mtime, self._rels.mtime, self._aspas.mtime)
        label = f"db{version}-vrp{files[0]}-rel{files[1]}-aspa{files[2]}"
        if label == self.reference.version:
            return False
        if version != self._db_version:
            prefixes = await conn.fetch(
                "SELECT tenant_id, prefix::text AS prefix, origin_asns, max_length, announced, "
                "upstream_asns, peer_asns FROM prefixes"
            )
            asns = await conn.fetch("SELECT tenant_id, asn FROM autonomous_systems")
            neighbors = await conn.fetch("SELECT tenant_id, asn, relationship FROM neighbor_asns")
            tenant_ids = {r["tenant_id"] for r in (*asns, *neighbors, *prefixes)}
            tenants = {
                t: Tenant(
                    t,
                    frozenset(r["asn"] for r in asns if r["tenant_id"] == t),
                    {r["asn"]: r["relationship"] for r in neighbors if r["tenant_id"] == t},
                )
                for t in tenant_ids
            }
            monitored = monitored_from_rows([dict(r) for r in prefixes])
            self._db_version = version
        else:
            monitored, tenants = self.reference.monitored, self.reference.tenants
        self.reference = Reference(
            monitored,
            tenants,
            vrp_index,  # type: ignore[arg-type]
            rels,  # type: ignore[arg-type]
            self.detection,
            label,
            aspas,  # type: ignore[arg-type]
        )
        return True
