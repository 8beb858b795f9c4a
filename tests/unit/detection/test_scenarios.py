"""Every scenario file: the updates sent must raise exactly the expected conflicts."""

from pathlib import Path

import pytest

from bgp_orchestrator.detection import scenario
from bgp_orchestrator.detection.pipeline import Pipeline

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.rglob("*.json"))


def test_every_detector_has_scenarios() -> None:
    from bgp_orchestrator.detection.pipeline import DETECTORS

    covered = set()
    for path in FILES:
        covered.update(e.type for e in scenario.load(path).expected)
    assert set(DETECTORS) <= covered, set(DETECTORS) - covered


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_scenario(path: Path) -> None:
    case = scenario.load(path)
    pipeline = Pipeline(case.reference)
    result = pipeline.process(case.updates)
    assert pipeline.errors == {}
    got = scenario.distinct(result.conflicts)
    missing, unexpected = scenario.compare(case.expected, got)
    assert not missing and not unexpected, (
        f"{case.description}\nmissing: {missing}\nunexpected: {unexpected}"
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_scenario_is_order_independent_across_batches(path: Path) -> None:
    """Feeding the same updates one by one gives the same conflicts (state carries over)."""
    case = scenario.load(path)
    pipeline = Pipeline(case.reference)
    conflicts = []
    for update in case.updates:
        conflicts.extend(pipeline.process([update]).conflicts)
    missing, unexpected = scenario.compare(case.expected, scenario.distinct(conflicts))
    assert not missing and not unexpected
