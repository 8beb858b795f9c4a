"""The one tenant-severity rule the RPKI, leak, bogon and MOAS detectors share."""

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.detection.batch import Prepared, prepare
from bgp_orchestrator.detection.conflict import Severity
from bgp_orchestrator.detection.detectors.scopes import tenant_scopes
from bgp_orchestrator.detection.scenario import reference_from_json

REF = reference_from_json(
    {
        "tenants": [{"id": 1, "asns": [64500]}, {"id": 2, "asns": [64600]}],
        "prefixes": [{"tenant_id": 1, "prefix": "45.65.0.0/16", "origin_asns": [64500]}],
    }
)


def _prepared(prefix: str, peer_asn: int) -> Prepared:
    u = Update(Kind.ANNOUNCE, 1.0, "10.0.0.1", peer_asn, prefix, (peer_asn, 13335))
    (p,) = prepare([u], REF, [])
    return p


def test_own_prefix_and_involved_asn_each_get_their_severity() -> None:
    p = _prepared("45.65.1.0/24", 64600)
    got = tenant_scopes(
        p,
        REF,
        own_prefix=Severity.HIGH,
        involved=Severity.MEDIUM,
        involved_asn=64600,
        global_scope=True,
    )
    assert got == {1: Severity.HIGH, 2: Severity.MEDIUM}


def test_a_tenant_both_ways_gets_the_higher_severity() -> None:
    p = _prepared("45.65.1.0/24", 64500)
    lower = tenant_scopes(
        p,
        REF,
        own_prefix=Severity.HIGH,
        involved=Severity.MEDIUM,
        involved_asn=64500,
        global_scope=True,
    )
    higher = tenant_scopes(
        p,
        REF,
        own_prefix=Severity.HIGH,
        involved=Severity.CRITICAL,
        involved_asn=64500,
        global_scope=True,
    )
    assert lower == {1: Severity.HIGH}
    assert higher == {1: Severity.CRITICAL}


def test_no_tenant_is_a_global_observation_only_when_kept() -> None:
    p = _prepared("8.8.8.0/24", 3356)
    kept = tenant_scopes(p, REF, own_prefix=Severity.LOW, global_scope=True)
    dropped = tenant_scopes(p, REF, own_prefix=Severity.LOW, global_scope=False)
    assert kept == {None: Severity.INFO}
    assert dropped == {}
