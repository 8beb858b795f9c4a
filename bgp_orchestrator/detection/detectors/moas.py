"""Multiple-origin AS (MOAS) observations for any prefix: informational."""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.bgp.update import path_text
from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.scopes import tenant_scopes
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState


def moas(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    """A prefix announced with a new origin while another origin was seen within the window."""
    window = ref.settings.moas_window_s
    origins = state.origins
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or len(p.origins) != 1:
            continue
        origin = p.origins[0]
        seen = origins.get(u.prefix)
        if seen is None:
            origins[u.prefix] = {origin: u.timestamp}
            continue
        if origin in seen:
            seen[origin] = max(seen[origin], u.timestamp)
            continue
        others = sorted(o for o, t in seen.items() if u.timestamp - t <= window)
        seen[origin] = u.timestamp
        if not others:
            continue
        all_origins = sorted({*others, origin})
        scopes = tenant_scopes(
            p, ref, own_prefix=Severity.LOW, global_scope=ref.settings.global_observations
        )
        for tenant_id, severity in scopes.items():
            yield Conflict(
                type=ConflictType.MOAS,
                severity=severity,
                tenant_id=tenant_id,
                prefix=u.prefix,
                origin_asn=origin,
                as_path=path_text(u.as_path),
                peer=u.peer_key,
                seen_at=u.timestamp,
                detail_key=",".join(map(str, all_origins)),
                details={"origins": all_origins, "new_origin": origin},
            )
