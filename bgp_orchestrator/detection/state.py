"""Per-prefix state held by a detector between batches (MOAS origins, visibility, caches)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Visibility:
    carrying: set[str] = field(default_factory=set)
    peak: int = 0
    alerted: bool = False
    #: that alert was raised while the pair was new (not merely before a baseline
    #: existed): it stays alerted whatever counter-evidence comes later
    alerted_new: bool = False


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
class LeakPair:
    """What the route-leak detector has seen of one leaker exporting to one neighbour."""

    #: stream time the pair was first seen leaking (the baseline: long-standing pairs)
    first_seen: float
    last_seen: float
    #: start of the current counting window
    window_start: float
    #: prefixes, and vantage points (peer ASNs) that saw this leak in the window (capped)
    prefixes: set[str] = field(default_factory=set)
    peers: set[int | str] = field(default_factory=set)
    #: the neighbours the leaker received the leaked routes from (capped)
    sources: set[int] = field(default_factory=set)
    #: an alert was raised in the current window: the rest of the leak is alerted too
    alerted: bool = False
    #: that alert was raised while the pair was new (not merely before a baseline
    #: existed): it stays alerted whatever counter-evidence comes later
    alerted_new: bool = False
    #: observations of this window that become alerts if the leak reaches the
    #: confidence needed (capped; not checkpointed: a replay rebuilds them)
    pending: list[Any] = field(default_factory=list)


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
    #: (leaker, neighbour it exported to) -> what was seen of that leak; bounded by
    #: ``leaks.MAX_PAIRS``, checkpointed (it is the baseline of long-standing leaks)
    leak_pairs: dict[tuple[int, int], LeakPair] = field(default_factory=dict)
    #: leaker -> the neighbours of its pairs (derived from ``leak_pairs``)
    leak_targets: dict[int, set[int]] = field(default_factory=dict)
    #: stream time the leak baseline started learning (None: not yet)
    leak_watch_start: float | None = None
    #: the first vantage AS (peer) a judged route came from, and whether another one
    #: has been seen since: propagation can only be measured on a multi-vantage feed
    leak_vantage: int | str | None = None
    leak_multi_vantage: bool = False

    def rov_cache_for(self, version: str) -> dict[tuple[str, int | None], str]:
        if version != self.rov_version or len(self.rov_cache) > self.max_cache:
            self.rov_cache = {}
            self.rov_version = version
        return self.rov_cache
