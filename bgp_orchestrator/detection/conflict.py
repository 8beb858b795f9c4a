"""The conflict taxonomy and the conflict record detectors emit."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ConflictType(StrEnum):
    EXACT_HIJACK = "exact-prefix-hijack"
    SUBPREFIX_HIJACK = "sub-prefix-hijack"
    SQUATTING = "squatting"
    ILLEGAL_FIRST_HOP = "illegal-first-hop"
    RPKI_INVALID = "rpki-invalid"
    ROUTE_LEAK = "route-leak"
    ASPA_INVALID = "aspa-invalid"
    NO_EXPORT = "no-export-violation"
    BOGON_PREFIX = "bogon-prefix"
    BOGON_ASN = "bogon-asn"
    MOAS = "moas"
    VISIBILITY_LOSS = "visibility-loss"
    UPSTREAM_VISIBILITY_LOSS = "upstream-visibility-loss"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


@dataclass(slots=True, kw_only=True)
class Conflict:
    """One observation of a conflict; observations with the same ``key`` are one conflict.

    Keyword-only: twelve fields, several of the same type (``prefix`` and
    ``monitored_prefix``, ``as_path`` and ``peer``), are too easy to swap by position.
    """

    type: ConflictType
    severity: Severity
    tenant_id: int | None
    prefix: str
    origin_asn: int | None
    as_path: str
    peer: str
    seen_at: float
    detail_key: str = ""
    monitored_prefix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    resolved: bool = False

    @property
    def key(self) -> str:
        """Stable identity: the same problem always gets the same key (idempotent upserts)."""
        origin = "" if self.origin_asn is None else str(self.origin_asn)
        return f"{self.tenant_id or 0}|{self.type.value}|{self.prefix}|{origin}|{self.detail_key}"
