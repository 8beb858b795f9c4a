"""The BMP station's options: listen addresses, allowed networks, views."""

from __future__ import annotations

import ipaddress

import pytest

from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.ingest.bmp_station import BmpStation, parse_allow, parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.10:5000", ("192.0.2.10", 5000)),
        ("0.0.0.0:11019", ("0.0.0.0", 11019)),
        ("[::]:11019", ("::", 11019)),
        ("[2001:db8::1]:1790", ("2001:db8::1", 1790)),
        ("2001:db8::1", ("2001:db8::1", 11019)),
        ("192.0.2.10", ("192.0.2.10", 11019)),
        ("bmp.example.net:5000", ("bmp.example.net", 5000)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (":11019", "name the address"),
        ("192.0.2.10:bmp", "must be a number"),
        ("192.0.2.10:70000", "out of range"),
        ("[2001:db8::1:11019", "missing ']'"),
        ("[2001:db8::1]11019", "expected [ADDRESS]:PORT"),
    ],
)
def test_bad_listen_addresses_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_listen(text)
    assert caught.value.code == "invalid-listen"
    assert words in caught.value.message


def test_allowed_networks() -> None:
    assert parse_allow(["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]) == [
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("198.51.100.7/32"),
    ]
    with pytest.raises(ConfigurationError) as caught:
        parse_allow(["192.0.2.300/24"])
    assert caught.value.code == "invalid-allow"


def test_allow_matches_v4_mapped_addresses() -> None:
    station = BmpStation(None, "::", 0, allow=parse_allow(["192.0.2.0/24"]))  # type: ignore[arg-type]
    assert station._allowed("192.0.2.9")
    assert station._allowed("::ffff:192.0.2.9")
    assert not station._allowed("198.51.100.1")


def test_unknown_views_are_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        BmpStation(None, "::", 0, views=["adj-rib-out"])  # type: ignore[arg-type]
    assert caught.value.code == "invalid-view"
