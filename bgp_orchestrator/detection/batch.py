"""A batch of updates prepared once for all detectors: prefix, origins, covering prefixes."""

from __future__ import annotations

from collections.abc import Iterable
from operator import eq
from typing import Any

from bgp_orchestrator.bgp.prefix import Net, parse_net
from bgp_orchestrator.bgp.update import AsPathElement, Kind, Update, path_text
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.reference import Monitored, Reference

ANNOUNCE = Kind.ANNOUNCE
WITHDRAW = Kind.WITHDRAW


class Prepared:
    """One update with what every detector needs computed once."""

    __slots__ = ("_path_text", "covering", "net", "origins", "path", "transit_tenants", "u")

    def __init__(
        self,
        u: Update,
        net: Net | None,
        origins: tuple[int, ...],
        path: list[AsPathElement],
        covering: list[Monitored],
        transit_tenants: tuple[int, ...],
    ) -> None:
        self.u = u
        self.net = net
        self.origins = origins
        self.path = path
        self.covering = covering
        self.transit_tenants = transit_tenants
        self._path_text: str | None = None

    def observe(
        self,
        *,
        type: ConflictType,
        severity: Severity,
        tenant_id: int | None,
        detail_key: str = "",
        monitored_prefix: str | None = None,
        details: dict[str, Any] | None = None,
        no_origin: bool = False,
    ) -> Conflict:
        """A conflict observed on this route: its prefix, peer, time, AS path and (unless
        ``no_origin``, or the origin is an AS_SET) origin filled in."""
        if self._path_text is None:
            self._path_text = path_text(self.u.as_path)
        u = self.u
        return Conflict(
            type=type,
            severity=severity,
            tenant_id=tenant_id,
            prefix=u.prefix,
            origin_asn=None if no_origin or len(self.origins) != 1 else self.origins[0],
            as_path=self._path_text,
            peer=u.peer_key,
            seen_at=u.timestamp,
            detail_key=detail_key,
            monitored_prefix=monitored_prefix,
            details=details if details is not None else {},
        )

    def owners(self) -> dict[int, Monitored]:
        """Per tenant, its most specific monitored prefix covering this one."""
        out: dict[int, Monitored] = {}
        for m in self.covering:  # least specific first, so the last one wins
            out[m.tenant_id] = m
        return out


def prepare(
    updates: Iterable[Update], ref: Reference, invalid: list[tuple[Update, str]]
) -> list[Prepared]:
    """Parse and annotate a batch; updates whose prefix does not parse go to ``invalid``."""
    out: list[Prepared] = []
    covering = ref.monitored.covering
    asn_tenants = ref.asn_tenants
    has_monitored = len(ref.monitored) > 0
    for u in updates:
        kind = u.kind
        if kind in (ANNOUNCE, WITHDRAW):
            try:
                net = parse_net(u.prefix)
            except ValueError as exc:
                invalid.append((u, str(exc)))
                continue
            path: list[AsPathElement] = []
            transit: tuple[int, ...] = ()
            origins: tuple[int, ...] = ()
            if kind == ANNOUNCE and u.as_path:
                raw = u.as_path
                if any(map(eq, raw, raw[1:])):  # prepending (in C: most paths have none)
                    last = None
                    for element in raw:
                        if element != last:
                            path.append(element)
                            last = element
                else:
                    path = list(raw)
                tail = path[-1]
                origins = tail if isinstance(tail, tuple) else (tail,)
                if asn_tenants and not asn_tenants.keys().isdisjoint(path):
                    # A list, not tuple concatenation: a path with a tenant's ASN a
                    # thousand times in it must cost a thousand steps, not a million.
                    found: list[int] = []
                    for element in path:
                        if isinstance(element, int) and element in asn_tenants:
                            found.extend(asn_tenants[element])
                    if found:
                        transit = tuple(dict.fromkeys(found))
            out.append(
                Prepared(u, net, origins, path, covering(net) if has_monitored else [], transit)
            )
        else:
            out.append(Prepared(u, None, (), [], [], ()))
    return out
