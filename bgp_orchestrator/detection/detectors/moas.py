"""Multiple-origin AS (MOAS) observations for any prefix: informational.

A MOAS is an announcement by an origin not seen on the prefix within
``moas_window_s`` while another origin was. Streams can carry storms (one
prefix announced by hundreds of origins, or many prefixes by several each),
so the detector is bounded on every axis:

* **State**: per prefix at most :data:`MAX_ORIGINS` origins, the most recently
  seen ones within the window, in ``state.origins`` (prefix -> {origin: last
  seen}, the shape checkpoints store). Origins older than the window are
  dropped when their prefix gets a new origin, and every prefix once per
  window of stream time (:func:`_sweep`), so a prefix nobody re-announces does
  not hold memory for ever. An origin older than the window counts as absent:
  when it comes back while another origin is present, that is a MOAS again.
* **Work**: an announcement by a known origin is one dictionary update; a new
  origin costs O(:data:`MAX_ORIGINS`), whatever the number of origins before.
* **Identity**: one conflict per (tenant, prefix), ``origin_asn`` None and no
  detail key. "This prefix has several origins" is the condition an operator
  acts on; who the origins are is in the details: a sorted sample of at most
  :data:`SAMPLE` of the origins currently seen, their count (it saturates at
  :data:`MAX_ORIGINS`) and the origin that made this observation. A storm of
  five hundred origins on a tenant's prefix is one row whose details follow
  the storm, not five hundred rows; each unauthorised origin on a tenant's
  prefix still gets its own hijack conflict (critical) from the origin
  detectors, which is where one origin can be acknowledged or ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

from bgp_orchestrator.detection.batch import ANNOUNCE, Prepared
from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity
from bgp_orchestrator.detection.detectors.scopes import tenant_scopes
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState

#: Origins remembered per prefix (the most recently seen within the window).
MAX_ORIGINS = 32
#: Origins listed in a conflict's details.
SAMPLE = 10


def moas(batch: list[Prepared], ref: Reference, state: DetectorState) -> Iterator[Conflict]:
    """A prefix announced with a new origin while another origin was seen within the window."""
    window = ref.settings.moas_window_s
    every = max(window, 1.0)  # sweep interval in stream time
    origins = state.origins
    global_scope = ref.settings.global_observations
    for p in batch:
        u = p.u
        if u.kind != ANNOUNCE or len(p.origins) != 1:
            continue
        now = u.timestamp
        if now >= state.moas_next_sweep or now < state.moas_next_sweep - 2 * every:
            _sweep(origins, now, window)  # also when the stream went back in time
            state.moas_next_sweep = now + every
        origin = p.origins[0]
        seen = origins.get(u.prefix)
        if seen is None:
            origins[u.prefix] = {origin: now}
            continue
        last = seen.get(origin)
        if last is not None and now - last <= window:
            if now > last:
                seen[origin] = now
            continue
        _admit(seen, origin, now, window)
        if len(seen) < 2:
            continue  # no other origin within the window
        scopes = tenant_scopes(p, ref, own_prefix=Severity.LOW, global_scope=global_scope)
        if not scopes:
            continue
        count = len(seen)
        others = f"{count - 1}{'+' if count >= MAX_ORIGINS else ''}"
        details = {
            "origins": sorted(seen)[:SAMPLE],
            "origin_count": count,
            "new_origin": origin,
            "explanation": f"AS{origin} announced the prefix while {others} other "
            f"{'origin' if count == 2 else 'origins'} did within {window:g} s",
        }
        for tenant_id, severity in scopes.items():
            yield p.observe(
                type=ConflictType.MOAS,
                severity=severity,
                tenant_id=tenant_id,
                details=details,
                no_origin=True,
            )


def _admit(seen: dict[int, float], origin: int, now: float, window: float) -> None:
    """Add ``origin`` to a prefix's origins: expired ones go, and the least recently
    seen while more than :data:`MAX_ORIGINS - 1` remain. O(MAX_ORIGINS)."""
    for expired in [o for o, t in seen.items() if now - t > window]:
        del seen[expired]
    excess = len(seen) - (MAX_ORIGINS - 1)
    if excess > 0:  # more than one only for state saved before the bound existed
        for oldest in sorted(seen, key=seen.__getitem__)[:excess]:
            del seen[oldest]
    seen[origin] = now


def _sweep(origins: dict[str, dict[int, float]], now: float, window: float) -> None:
    """Drop every origin last seen more than ``window`` before ``now``, and prefixes left
    without one: O(state), run once per window of stream time, so O(1) per update."""
    for prefix in list(origins):
        seen = origins[prefix]
        if all(now - t > window for t in seen.values()):
            del origins[prefix]
        elif any(now - t > window for t in seen.values()):
            origins[prefix] = {o: t for o, t in seen.items() if now - t <= window}
