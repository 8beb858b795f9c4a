"""Per-prefix state held by a detector between batches (MOAS origins, visibility, caches)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Visibility:
    carrying: set[str] = field(default_factory=set)
    peak: int = 0
    alerted: bool = False


@dataclass
class UpstreamVisibility:
    """Through which configured upstream each peer carries a monitored prefix."""

    #: peer key -> the upstream its path goes through
    peers: dict[str, int] = field(default_factory=dict)
    #: upstream -> peers carrying the prefix through it (kept with ``peers``)
    counts: dict[int, int] = field(default_factory=dict)
    #: upstreams the prefix has been seen through at all (only those can be lost)
    seen: set[int] = field(default_factory=set)
    #: upstreams currently reported lost
    alerted: set[int] = field(default_factory=set)


@dataclass
class DetectorState:
    #: prefix -> {origin ASN: last seen}; at most ``moas.MAX_ORIGINS`` per prefix, those
    #: seen within the MOAS window (checkpoints store it as it is)
    origins: dict[str, dict[int, float]] = field(default_factory=dict)
    #: stream time of the next sweep of expired origins (not checkpointed: a restored
    #: state is swept at its first announcement)
    moas_next_sweep: float = 0.0
    #: monitored prefix -> which peers carry it
    visibility: dict[str, Visibility] = field(default_factory=dict)
    #: monitored prefix -> which peers carry it through which configured upstream
    upstream_visibility: dict[str, UpstreamVisibility] = field(default_factory=dict)
    #: (prefix, origin) -> RPKI state, for the reference version in ``rov_version``
    rov_cache: dict[tuple[str, int | None], str] = field(default_factory=dict)
    rov_version: str = ""
    max_cache: int = 2_000_000
    #: the leak judge built for the reference version in ``leak_judge_version``
    leak_judge: object | None = None
    leak_judge_version: str = ""

    def rov_cache_for(self, version: str) -> dict[tuple[str, int | None], str]:
        if version != self.rov_version or len(self.rov_cache) > self.max_cache:
            self.rov_cache = {}
            self.rov_version = version
        return self.rov_cache
