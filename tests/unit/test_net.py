import pytest

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.model.net import family, max_prefix_length, parse_address, parse_prefix


def test_addresses_are_normalised() -> None:
    assert str(parse_address("2001:DB8:0:0::1")) == "2001:db8::1"
    assert str(parse_address(" 192.0.2.1 ")) == "192.0.2.1"


@pytest.mark.parametrize("bad", ["192.0.2.256", "192.0.2", "2001:db8::g", "", "host", 42, None])
def test_bad_addresses(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_address(bad, field="peer_address")
    assert info.value.field == "peer_address"


def test_prefix_given_as_address_says_drop_the_length() -> None:
    with pytest.raises(InvalidInput, match="drop the /length"):
        parse_address("192.0.2.1/32")


def test_prefixes_are_normalised() -> None:
    assert str(parse_prefix("2001:DB8::/32")) == "2001:db8::/32"
    assert str(parse_prefix("10.0.0.0/8")) == "10.0.0.0/8"


def test_host_bits_suggest_the_network() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_prefix("192.0.2.1/24", field="peering_lan")
    assert info.value.code == "prefix-host-bits"
    assert info.value.field == "peering_lan"
    assert info.value.details == {"suggestion": "192.0.2.0/24"}
    assert "192.0.2.0/24" in info.value.message


@pytest.mark.parametrize("bad", ["192.0.2.0", "192.0.2.0/33", "2001:db8::/129", "x/8", 7])
def test_bad_prefixes(bad: object) -> None:
    with pytest.raises(InvalidInput):
        parse_prefix(bad)


def test_family_and_lengths() -> None:
    assert family(parse_prefix("2001:db8::/32")) == 6
    assert family(parse_address("192.0.2.1")) == 4
    assert max_prefix_length(4) == 32
    assert max_prefix_length(6) == 128


def test_zone_index_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="zone index"):
        parse_address("fe80::1%eth0")
    with pytest.raises(InvalidInput, match="zone index"):
        parse_prefix("fe80::%eth0/64")
