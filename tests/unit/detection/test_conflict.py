"""The conflict record: keyword-only, and its identity."""

import pytest

from bgp_orchestrator.detection.conflict import Conflict, ConflictType, Severity


def _fields() -> dict[str, object]:
    return {
        "type": ConflictType.BOGON_ASN,
        "severity": Severity.HIGH,
        "tenant_id": 3,
        "prefix": "45.65.12.0/24",
        "origin_asn": 64500,
        "as_path": "3356 64512 64500",
        "peer": "rrc00|10.0.0.1",
        "seen_at": 1000.0,
        "detail_key": "64512",
    }


def test_conflicts_are_built_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        Conflict(*_fields().values())


def test_the_key_is_tenant_type_prefix_origin_and_detail() -> None:
    assert Conflict(**_fields()).key == "3|bogon-asn|45.65.12.0/24|64500|64512"
    global_moas = {**_fields(), "type": ConflictType.MOAS, "tenant_id": None, "origin_asn": None}
    global_moas["detail_key"] = ""
    assert Conflict(**global_moas).key == "0|moas|45.65.12.0/24||"
