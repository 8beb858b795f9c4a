"""The replay every experiment runs: the demo world's stream with fresh labelled incidents.

The world is the one `bgpo up --demo` loads (its tenants in PostgreSQL, its ROAs
and AS relationships in ``<data dir>/simulation``), so the detectors of a demo
stack judge every incident. Incidents avoid every prefix that already has a
conflict (an earlier run's row would hide a conflict this run failed to raise).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bgp_orchestrator.detection.scenario import Expected
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.simulation.stream import Simulation
from bgp_orchestrator.simulation.world import World, build

#: expectations that need a reference file the detectors may not have
NEEDS_VRPS = ("rpki-invalid",)
NEEDS_RELATIONSHIPS = ("route-leak",)


def world() -> World:
    from bgp_orchestrator.stack.lifecycle import DEMO_WORLD

    return build(**DEMO_WORLD)


def reference_paths(settings: Settings) -> tuple[Path, Path]:
    folder = settings.data_dir / "simulation"
    return folder / "vrps.csv", folder / "as-rel.txt"


def ensure_reference_files(settings: Settings, w: World) -> bool:
    """Write the world's reference files where the demo keeps them; True if changed."""
    from bgp_orchestrator.simulation.setup import write_reference_files

    vrps, rels = reference_paths(settings)
    wanted_rels = (
        "# simulated AS relationships (CAIDA serial-1)\n" + "\n".join(w.relationships) + "\n"
    )
    if (
        vrps.exists()
        and rels.exists()
        and vrps.read_text() == w.vrp_csv()
        and rels.read_text() == wanted_rels
    ):
        return False
    write_reference_files(w, vrps.parent)
    return True


def _same(path: str | None, wanted: Path) -> bool:
    if not path:
        return False
    try:
        return Path(path).resolve() == wanted.resolve()
    except OSError:
        return False


@dataclass
class Replay:
    sim: Simulation
    #: world tenant id -> database id
    tenant_ids: dict[int, int]
    expected: list[Expected]
    #: why some labelled conflicts are not judged on this stack
    unjudged: list[str] = field(default_factory=list)

    @property
    def slugs(self) -> list[str]:
        return [t.slug for t in self.sim.world.tenants]


async def prepare(
    settings: Settings,
    conn: asyncpg.Connection,
    detector_env: Mapping[str, str],
    *,
    total: int,
    rate: float,
    incidents: int,
    seed: int | None = None,
    start_time: float | None = None,
) -> Replay:
    from bgp_orchestrator.simulation.setup import seed_tenants

    w = await asyncio.to_thread(world)
    vrps, rels = reference_paths(settings)
    has_vrps = _same(detector_env.get("BGPO_RPKI_VRP_FILE"), vrps)
    has_rels = _same(detector_env.get("BGPO_AS_RELATIONSHIPS_FILE"), rels)
    changed = False
    if has_vrps or has_rels:
        changed = await asyncio.to_thread(ensure_reference_files, settings, w)
    slugs = await seed_tenants(conn, w)
    tenant_ids = {t.id: slugs[t.slug] for t in w.tenants}
    # Prefixes with a conflict, and those of earlier runs' incidents (a conflict an
    # earlier run missed left its prefix without a row, but not without detector state).
    record = settings.data_dir / "chaos" / "used-prefixes.txt"
    rows = await conn.fetch("SELECT DISTINCT prefix::text AS prefix FROM conflicts")
    used = {r["prefix"] for r in rows}
    if record.exists():
        used.update(line for line in record.read_text().splitlines() if line)
    sim = Simulation(
        w,
        total=total,
        rate=rate,
        incidents=incidents,
        seed=seed if seed is not None else random.randrange(1 << 30),  # noqa: S311 - a seed
        start_time=time.time() if start_time is None else start_time,
        avoid=frozenset(used),
    )
    try:
        sim.plan()
    except ValueError as exc:
        raise ConfigurationError(
            "chaos-world-used-up",
            f"the simulated world has no fresh prefixes left for {incidents} incidents ({exc}); "
            "run the suite on a fresh stack (another BGPO_DATA_DIR)",
        ) from None
    record.parent.mkdir(parents=True, exist_ok=True)
    with record.open("a") as out:
        for prefix in sorted({i.prefix for i in sim.plan()} | {e.prefix for e in sim.expected()}):
            out.write(prefix + "\n")
    expected = sim.expected()
    unjudged = []
    if not has_vrps:
        expected = [e for e in expected if e.type not in NEEDS_VRPS]
        unjudged.append(
            f"rpki-invalid: the detectors do not read {vrps} (BGPO_RPKI_VRP_FILE; `bgpo up --demo` "
            "sets it)"
        )
    if not has_rels:
        expected = [e for e in expected if e.type not in NEEDS_RELATIONSHIPS]
        unjudged.append(
            f"route-leak: the detectors do not read {rels} (BGPO_AS_RELATIONSHIPS_FILE)"
        )
    if changed:
        # the detectors reload changed reference files within seconds
        await asyncio.sleep(5.0)
    return Replay(sim, tenant_ids, expected, unjudged)
