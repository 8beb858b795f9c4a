"""The detection pipeline: prepare a batch once, run every detector, collect conflicts.

A detector that raises is reported (logged once per minute with its traceback,
counted in ``errors``) and the others still run: a crash is never swallowed
silently, and never stops the stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.detection.batch import prepare
from bgp_orchestrator.detection.conflict import Conflict
from bgp_orchestrator.detection.detectors import Detector
from bgp_orchestrator.detection.detectors.aspa import aspa_invalid
from bgp_orchestrator.detection.detectors.bogons import bogon_asn_in_path, bogon_prefix_announced
from bgp_orchestrator.detection.detectors.first_hop import illegal_first_hop
from bgp_orchestrator.detection.detectors.leaks import no_export_violation, route_leak
from bgp_orchestrator.detection.detectors.moas import moas
from bgp_orchestrator.detection.detectors.origin import (
    exact_prefix_hijack,
    squatting,
    subprefix_hijack,
)
from bgp_orchestrator.detection.detectors.rpki import rpki_invalid
from bgp_orchestrator.detection.detectors.upstreams import upstream_visibility_loss
from bgp_orchestrator.detection.detectors.visibility import visibility_loss
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState

log = logging.getLogger(__name__)

DETECTORS: dict[str, Detector] = {
    "exact-prefix-hijack": exact_prefix_hijack,
    "sub-prefix-hijack": subprefix_hijack,
    "squatting": squatting,
    "illegal-first-hop": illegal_first_hop,
    "rpki-invalid": rpki_invalid,
    "route-leak": route_leak,
    "aspa-invalid": aspa_invalid,
    "no-export-violation": no_export_violation,
    "bogon-prefix": bogon_prefix_announced,
    "bogon-asn": bogon_asn_in_path,
    "moas": moas,
    "visibility-loss": visibility_loss,
    "upstream-visibility-loss": upstream_visibility_loss,
}


@dataclass
class BatchResult:
    conflicts: list[Conflict] = field(default_factory=list)
    invalid: list[tuple[Update, str]] = field(default_factory=list)
    updates: int = 0


class Pipeline:
    def __init__(
        self,
        reference: Reference,
        state: DetectorState | None = None,
        detectors: dict[str, Detector] | None = None,
    ) -> None:
        self.reference = reference
        self.state = state or DetectorState()
        self.detectors = dict(detectors or DETECTORS)
        self.errors: dict[str, int] = {}
        self._last_report: dict[str, float] = {}

    def process(self, updates: Iterable[Update]) -> BatchResult:
        result = BatchResult()
        ref = self.reference
        batch = prepare(updates, ref, result.invalid)
        result.updates = len(batch)
        for name, detector in self.detectors.items():
            try:
                result.conflicts.extend(detector(batch, ref, self.state))
            except Exception:
                self.errors[name] = self.errors.get(name, 0) + 1
                now = time.monotonic()
                if now - self._last_report.get(name, 0.0) > 60:
                    self._last_report[name] = now
                    log.exception(
                        "detector %s failed on a batch of %d updates (%d failures so far)",
                        name,
                        len(batch),
                        self.errors[name],
                    )
        return result
