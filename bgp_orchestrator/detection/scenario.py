"""Scenario files: BGP updates sent, paired with the conflicts they must raise.

The same format drives the detector tests (``tests/scenarios``), the
simulator's labelled incidents and the benchmark's recall/precision::

    {
      "description": "...",
      "reference": {
        "tenants": [{"id": 1, "asns": [64500], "neighbors": {"3356": "upstream"}}],
        "prefixes": [{"tenant_id": 1, "prefix": "203.0.113.0/24", "origin_asns": [64500],
                      "max_length": 24, "announced": true}],
        "vrps": [{"asn": 64500, "prefix": "203.0.113.0/24", "max_length": 24}],
        "relationships": ["3356|64500|-1"],
        "settings": {"visibility_min_peers": 3}
      },
      "updates": [{"kind": "announce", "peer": "192.0.2.1", "peer_asn": 3356,
                   "prefix": "203.0.113.0/24", "path": [3356, [64501, 64502]],
                   "communities": ["65535:65281"], "timestamp": 1000.0}],
      "expected": [{"type": "exact-prefix-hijack", "tenant_id": 1, "prefix": "203.0.113.0/24",
                    "origin_asn": 64501, "detail_key": "", "severity": "critical"}]
    }
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from bgp_orchestrator.bgp.parsers.common import path_from_list
from bgp_orchestrator.bgp.prefix import parse_net
from bgp_orchestrator.bgp.update import Kind, Update, community_text, parse_community
from bgp_orchestrator.detection.conflict import Conflict
from bgp_orchestrator.detection.reference import (
    DetectionSettings,
    Monitored,
    MonitoredIndex,
    Reference,
    Tenant,
    own_neighbours,
)
from bgp_orchestrator.reference.aspa import AspaIndex, parse_items
from bgp_orchestrator.reference.asrel import parse_lines
from bgp_orchestrator.reference.vrps import Vrp, VrpIndex

KINDS = {
    "announce": Kind.ANNOUNCE,
    "withdraw": Kind.WITHDRAW,
    "peer-up": Kind.PEER_UP,
    "peer-down": Kind.PEER_DOWN,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}


@dataclass(frozen=True)
class Expected:
    type: str
    tenant_id: int | None
    prefix: str
    origin_asn: int | None
    detail_key: str = ""
    severity: str | None = None
    resolved: bool = False

    @classmethod
    def of(cls, c: Conflict) -> Expected:
        return cls(
            c.type.value,
            c.tenant_id,
            c.prefix,
            c.origin_asn,
            c.detail_key,
            c.severity.value,
            c.resolved,
        )

    def matches(self, other: Expected) -> bool:
        """Equal, with ``severity`` ignored when this expectation leaves it out."""
        mine = (
            self.type,
            self.tenant_id,
            self.prefix,
            self.origin_asn,
            self.detail_key,
            self.resolved,
        )
        theirs = (
            other.type,
            other.tenant_id,
            other.prefix,
            other.origin_asn,
            other.detail_key,
            other.resolved,
        )
        return mine == theirs and (self.severity is None or self.severity == other.severity)


@dataclass
class Scenario:
    description: str
    reference: Reference
    updates: list[Update]
    expected: list[Expected]
    raw_reference: dict[str, Any]


def update_from_json(item: dict[str, Any]) -> Update:
    return Update(
        KINDS[item.get("kind", "announce")],
        float(item.get("timestamp", 0.0)),
        str(item.get("peer", "192.0.2.1")),
        int(item.get("peer_asn", 0)),
        str(item.get("prefix", "")),
        path_from_list(item.get("path", [])),
        tuple(parse_community(c) for c in item.get("communities", [])),
        str(item.get("next_hop", "")),
        str(item.get("source", "scenario")),
        str(item.get("collector", "test")),
    )


def update_to_json(u: Update) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": KIND_NAMES[Kind(u.kind)],
        "timestamp": u.timestamp,
        "peer": u.peer_address,
        "peer_asn": u.peer_asn,
        "collector": u.collector,
    }
    if u.prefix:
        out["prefix"] = u.prefix
    if u.as_path:
        out["path"] = [list(e) if isinstance(e, tuple) else e for e in u.as_path]
    if u.communities:
        out["communities"] = [community_text(c) for c in u.communities]
    return out


def reference_from_json(data: dict[str, Any], version: str = "scenario") -> Reference:
    tenants = {
        int(t["id"]): Tenant(
            int(t["id"]),
            frozenset(int(a) for a in t.get("asns", [])),
            {int(a): str(rel) for a, rel in (t.get("neighbors") or {}).items()},
        )
        for t in data.get("tenants", [])
    }
    monitored = MonitoredIndex(
        Monitored(
            int(p["tenant_id"]),
            p["prefix"],
            parse_net(p["prefix"]),
            frozenset(int(a) for a in p.get("origin_asns", [])),
            int(p.get("max_length", parse_net(p["prefix"]).length)),
            bool(p.get("announced", True)),
            *own_neighbours(p),
        )
        for p in data.get("prefixes", [])
    )
    vrps = None
    if "vrps" in data:
        vrps = VrpIndex(
            Vrp(
                int(v["asn"]),
                parse_net(v["prefix"]),
                int(v.get("max_length", parse_net(v["prefix"]).length)),
            )
            for v in data["vrps"]
        )
    rels = parse_lines(data["relationships"]) if "relationships" in data else None
    known = {f.name for f in fields(DetectionSettings)}
    settings = DetectionSettings(
        **{k: v for k, v in (data.get("settings") or {}).items() if k in known}
    )
    aspas = None
    if "aspas" in data:
        aspas = AspaIndex(parse_items(list(data["aspas"]), "scenario aspas"))
    return Reference(monitored, tenants, vrps, rels, settings, version, aspas)


def load(path: str | Path) -> Scenario:
    data = orjson.loads(Path(path).read_bytes())
    ref = data.get("reference") or {}
    return Scenario(
        description=str(data.get("description", "")),
        reference=reference_from_json(ref, version=str(path)),
        updates=[update_from_json(u) for u in data.get("updates", [])],
        expected=[Expected(**e) for e in data.get("expected", [])],
        raw_reference=ref,
    )


def save(
    path: str | Path,
    description: str,
    reference: dict[str, Any],
    updates: Iterable[Update],
    expected: Iterable[Expected],
) -> None:
    body = {
        "description": description,
        "reference": reference,
        "updates": [update_to_json(u) for u in updates],
        "expected": [{k: v for k, v in e.__dict__.items() if v is not None} for e in expected],
    }
    Path(path).write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))


def distinct(conflicts: Iterable[Conflict]) -> list[Expected]:
    """The distinct conflicts (by key; a resolution is its own entry), in first-seen order."""
    seen: dict[tuple[str, bool], Expected] = {}
    for c in conflicts:
        seen.setdefault((c.key, c.resolved), Expected.of(c))
    return list(seen.values())


def compare(expected: list[Expected], got: list[Expected]) -> tuple[list[Expected], list[Expected]]:
    """(missing, unexpected) between what a scenario expects and what was raised."""
    missing = [e for e in expected if not any(e.matches(g) for g in got)]
    unexpected = [g for g in got if not any(e.matches(g) for e in expected)]
    return missing, unexpected
