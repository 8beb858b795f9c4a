"""One module per family of detectors; each detector is ``detect(batch, ref, state)``.

A detector is a pure function of the prepared batch, the reference snapshot
and (for MOAS and visibility) the explicit state it is handed; it yields
:class:`~bgp_orchestrator.detection.conflict.Conflict` observations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bgp_orchestrator.detection.batch import Prepared
from bgp_orchestrator.detection.conflict import Conflict
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState

Detector = Callable[[list[Prepared], Reference, DetectorState], Iterator[Conflict]]
