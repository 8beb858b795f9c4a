import pytest

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.model.asn import ASN_MAX, format_asdot, parse_asn


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (64500, 64500),
        ("64500", 64500),
        ("AS64500", 64500),
        ("as64500", 64500),
        (" AS3356 ", 3356),
        ("1.10", 65546),
        ("AS1.10", 65546),
        ("0.1", 1),
        ("65535.65535", ASN_MAX),
        ("4294967295", ASN_MAX),
        (1, 1),
    ],
)
def test_accepts_asplain_and_asdot(text: object, expected: int) -> None:
    assert parse_asn(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        0,
        "0",
        "AS0",
        4294967296,
        "4294967296",
        -1,
        "0.0",
        "65536.1",
        "1.65536",
        "AS",
        "",
        "1.2.3",
        "12a",
        True,
        None,
        1.5,
        "٣",
    ],
)
def test_rejects_out_of_range_and_garbage(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_asn(bad, field="peer_asn")
    assert info.value.field == "peer_asn"
    assert info.value.code == "invalid-asn"


def test_range_error_names_the_range() -> None:
    with pytest.raises(InvalidInput, match=r"1\.\.4294967295"):
        parse_asn(4294967296)


@pytest.mark.parametrize(
    ("asn", "text"), [(64500, "64500"), (65536, "1.0"), (65546, "1.10"), (ASN_MAX, "65535.65535")]
)
def test_format_asdot(asn: int, text: str) -> None:
    assert format_asdot(asn) == text
    assert parse_asn(text) == asn
