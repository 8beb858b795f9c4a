from pathlib import Path

import pytest

from bgp_orchestrator.bgp.parsers import mrt
from bgp_orchestrator.bgp.prefix import parse_net
from bgp_orchestrator.bgp.update import Kind, origin_asns
from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.reference import asrel, vrps
from bgp_orchestrator.reference.bogons import bogon_asn, bogon_prefix


def test_rov_of_a_real_stream_against_real_vrps(bgp_data: Path) -> None:
    index = vrps.VrpIndex(vrps.load(bgp_data / "rpki" / "vrps.2016-09.csv"))
    counts: dict[str, int] = {}
    for record in mrt.read(bgp_data / "mrt" / "updates.20160811.1600.gz"):
        for u in record.updates:
            if u.kind == Kind.ANNOUNCE:
                origins = origin_asns(u.as_path)
                state = index.validate(
                    parse_net(u.prefix), origins[0] if len(origins) == 1 else None
                )
                counts[state] = counts.get(state, 0) + 1
    assert counts == {"valid": 3214, "invalid-origin": 49, "invalid-length": 19, "not-found": 35974}


def test_vrp_json_formats(tmp_path: Path) -> None:
    routinator = tmp_path / "r.json"
    routinator.write_text(
        '{"roas": [{"asn": "AS13335", "prefix": "1.1.1.0/24", "maxLength": 24, '
        '"ta": "apnic"}, {"asn": 15169, "prefix": "2001:4860::/32", "maxLength": 48}]}'
    )
    index = vrps.VrpIndex(vrps.load(routinator))
    assert index.validate(parse_net("1.1.1.0/24"), 13335) == "valid"
    assert index.validate(parse_net("1.1.1.0/25"), 13335) == "invalid-length"
    assert index.validate(parse_net("2001:4860:1::/48"), 1) == "invalid-origin"
    assert index.validate(parse_net("8.8.8.0/24"), 15169) == "not-found"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ASN,IP Prefix,Max Length\nAS1,1.1.1.1/24,24\n", "line 2"),
        ("ASN,IP Prefix,Max Length\nAS1,1.1.1.0/24,20\n", "max length"),
        ("ASN,IP Prefix,Max Length\nASx,1.1.1.0/24,24\n", "not an ASN"),
        ('{"roas": 5}', "roas"),
    ],
)
def test_invalid_vrp_files_name_the_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=needle):
        vrps.load(path)


def test_caida_relationships(bgp_data: Path, tmp_path: Path) -> None:
    rels = asrel.load(bgp_data / "asrel" / "20161101.as-rel.txt.bz2")
    assert len(rels) == 239064
    assert rels.get(3356, 3549) is not None
    serial2 = tmp_path / "s2.txt"
    serial2.write_text("# comment\n174|200100|-1|bgp\n200100|200101|0|mlp\n200100|200102|1\n")
    local = asrel.load(serial2)
    assert local.get(174, 200100) == asrel.Rel.PROVIDER
    assert local.get(200100, 174) == asrel.Rel.CUSTOMER
    assert local.get(200101, 200100) == asrel.Rel.PEER
    assert local.get(200102, 200100) == asrel.Rel.SIBLING
    bad = tmp_path / "bad.txt"
    bad.write_text("174|200100|7\n")
    with pytest.raises(ConfigurationError, match="line 1"):
        asrel.load(bad)


@pytest.mark.parametrize(
    ("prefix", "bogon"),
    [
        ("10.0.0.0/8", True),
        ("10.1.2.0/24", True),
        ("8.8.8.0/24", False),
        ("100.64.0.0/10", True),
        ("100.128.0.0/16", False),
        ("0.0.0.0/0", True),
        ("224.0.0.0/24", True),
        ("2001:db8::/48", True),
        ("2a0b:4e00::/32", False),
        ("fe80::/64", True),
        ("2001::/32", False),
        ("2001:2::/48", True),
    ],
)
def test_bogon_prefixes(prefix: str, bogon: bool) -> None:
    assert (bogon_prefix(parse_net(prefix)) is not None) is bogon


@pytest.mark.parametrize(
    ("asn", "bogon"),
    [
        (0, True),
        (1, False),
        (23456, True),
        (64495, False),
        (64496, True),
        (64512, True),
        (65535, True),
        (65536, True),
        (131071, True),
        (131072, False),
        (4199999999, False),
        (4200000000, True),
        (4294967295, True),
    ],
)
def test_bogon_asns(asn: int, bogon: bool) -> None:
    assert (bogon_asn(asn) is not None) is bogon
