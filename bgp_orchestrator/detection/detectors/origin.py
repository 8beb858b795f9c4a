"""Origin checks on monitored prefixes: exact-prefix hijack, sub-prefix hijack, squatting."""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.reference import Monitored, Reference
from bgp_orchestrator.detection.state import DetectorState


def _authorised(p: Prepared, m: Monitored) -> bool:
    return not m.origins.isdisjoint(p.origins)  # in C: an AS_SET origin may be huge


def _conflict(
    p: Prepared,
    m: Monitored,
    kind: ConflictType,
    severity: Severity,
    detail_key: str,
    **details: object,
) -> Conflict:
    if len(p.origins) > 1:
        details["as_set_origin"] = list(p.origins)
    return p.observe(
        type=kind,
        severity=severity,
        tenant_id=m.tenant_id,
        detail_key=detail_key,
        monitored_prefix=m.prefix,
        details={"authorised_origins": sorted(m.origins), **details},
    )


def exact_prefix_hijack(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    """A monitored prefix itself, announced by an origin that is not authorised."""
    for p in batch:
        if not p.covering or p.u.kind != ANNOUNCE or not p.origins:
            continue
        for m in p.owners().values():
            if m.net.length == p.net.length and m.announced and not _authorised(p, m):  # type: ignore[union-attr]
                yield _conflict(
                    p,
                    m,
                    ConflictType.EXACT_HIJACK,
                    Severity.CRITICAL,
                    "",
                    reason="unauthorised-origin",
                )


def subprefix_hijack(
    batch: list[Prepared], ref: Reference, state: DetectorState
) -> Iterator[Conflict]:
    """A more-specific of a monitored prefix from an unauthorised origin, or too long."""
    for p in batch:
        if not p.covering or p.u.kind != ANNOUNCE or not p.origins:
            continue
        length = p.net.length  # type: ignore[union-attr]
        for m in p.owners().values():
            if m.net.length >= length or not m.announced:
                continue
            if not _authorised(p, m):
                yield _conflict(
                    p,
                    m,
                    ConflictType.SUBPREFIX_HIJACK,
                    Severity.CRITICAL,
                    m.prefix,
                    reason="unauthorised-origin",
                )
            elif length > m.max_length:
                yield _conflict(
                    p,
                    m,
                    ConflictType.SUBPREFIX_HIJACK,
                    Severity.HIGH,
                    m.prefix,
                    reason="longer-than-max-length",
                    max_length=m.max_length,
                )


def squatting(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    """A monitored prefix marked "not announced" (or a more-specific of it) appears."""
    for p in batch:
        if not p.covering or p.u.kind != ANNOUNCE:
            continue
        for m in p.owners().values():
            if not m.announced:
                yield _conflict(
                    p,
                    m,
                    ConflictType.SQUATTING,
                    Severity.CRITICAL,
                    m.prefix,
                    reason="prefix-should-not-be-announced",
                )
