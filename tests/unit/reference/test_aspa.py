"""ASPA objects: the relying-party export formats, and the draft's two procedures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.reference import aspa
from bgp_orchestrator.reference.aspa import (
    DOWNSTREAM,
    UPSTREAM,
    Aspa,
    AspaIndex,
    AspaState,
    Hop,
)

# The draft's worked example, path E G F C A as received (E the neighbour, A the
# origin): A and C attest their providers, F and E publish nothing, G attests a
# provider set without E or F.
A, C, E, F, G = 101, 103, 105, 106, 107
EXAMPLE = AspaIndex([Aspa(A, frozenset({C})), Aspa(C, frozenset({F})), Aspa(G, frozenset({99}))])


def test_hop_outcomes() -> None:
    assert EXAMPLE.hop(A, C) is Hop.PROVIDER_PLUS
    assert EXAMPLE.hop(G, E) is Hop.NOT_PROVIDER_PLUS
    assert EXAMPLE.hop(F, G) is Hop.NO_ATTESTATION


def test_draft_example_is_unknown_downstream_and_invalid_upstream() -> None:
    down = EXAMPLE.verify([E, G, F, C, A], DOWNSTREAM)
    assert down.state is AspaState.UNKNOWN
    up = EXAMPLE.verify([E, G, F, C, A], UPSTREAM)
    assert up.state is AspaState.INVALID
    assert up.failed == ((G, E),)


def test_downstream_valley_names_both_ramp_ends_and_the_ases_between() -> None:
    index = AspaIndex(
        [
            Aspa(200100, frozenset({3356})),
            Aspa(3356, frozenset({0})),
            Aspa(2914, frozenset({0})),
            Aspa(200666, frozenset({174, 2914})),
        ]
    )
    verdict = index.verify([2914, 200666, 174, 3356, 200100], DOWNSTREAM)
    assert verdict.state is AspaState.INVALID
    assert verdict.failed == ((3356, 174), (2914, 200666))
    assert verdict.between == (174, 200666)
    assert "AS174, AS200666" in verdict.reason


@pytest.mark.parametrize(
    ("path", "procedure", "state"),
    [
        ([], DOWNSTREAM, AspaState.INVALID),
        ([3356, (174, 2914), 200100], DOWNSTREAM, AspaState.INVALID),
        ([3356], UPSTREAM, AspaState.VALID),
        ([3356, 200100], DOWNSTREAM, AspaState.VALID),  # two ASes: no valley possible
        ([3356, 200100], UPSTREAM, AspaState.VALID),  # 200100 attests 3356
        ([1299, 200100], UPSTREAM, AspaState.INVALID),  # ... and not 1299
        ([64999, 200200], UPSTREAM, AspaState.UNKNOWN),  # 200200 attests nothing
    ],
)
def test_edge_cases(path: list[object], procedure: str, state: AspaState) -> None:
    index = AspaIndex([Aspa(200100, frozenset({3356})), Aspa(3356, frozenset({0}))])
    assert index.verify(path, procedure).state is state  # type: ignore[arg-type]


def test_as0_provider_set_means_no_provider_at_all() -> None:
    index = AspaIndex([Aspa(3356, frozenset({0}))])
    assert index.hop(3356, 174) is Hop.NOT_PROVIDER_PLUS


def test_rpki_client_and_routinator_exports(tmp_path: Path) -> None:
    rpki_client = tmp_path / "rpki-client.json"
    rpki_client.write_text(
        '{"roas": [], "aspas": [{"customer_asid": 64496, "expires": 1, "providers": [64497]},'
        ' {"customer_asid": 64496, "providers": [{"asid": 64498, "afi_limit": "ipv4"}]}]}'
    )
    routinator = tmp_path / "routinator.json"
    routinator.write_text('{"aspas": [{"customer": "AS64496", "providers": ["AS64497", "AS0"]}]}')
    assert aspa.load(rpki_client) == [Aspa(64496, frozenset({64497, 64498}))]
    assert aspa.load(routinator) == [Aspa(64496, frozenset({64497, 0}))]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "is not JSON"),
        ('{"roas": []}', "'aspas' list"),
        ('{"aspas": [{"providers": [1]}]}', "names no customer"),
        ('{"aspas": [{"customer_asid": 1, "providers": 2}]}', "'providers' must be a list"),
        ('{"aspas": [{"customer_asid": "ASx", "providers": []}]}', "is not an ASN"),
        ('{"aspas": [{"customer_asid": 1, "providers": [4294967296]}]}', "providers[0]"),
    ],
)
def test_bad_files_are_refused_with_the_place(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "aspa.json"
    path.write_text(body)
    with pytest.raises(ConfigurationError) as err:
        aspa.load(path)
    assert message in err.value.message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        aspa.load(tmp_path / "missing.json")
