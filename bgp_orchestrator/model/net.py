"""IP addresses and prefixes, normalised; IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
from typing import Literal

from bgp_orchestrator.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressFamily = Literal[4, 6]


def parse_address(value: object, field: str = "address") -> IPAddress:
    """An IPv4 or IPv6 host address in canonical form (``2001:DB8::1`` -> ``2001:db8::1``)."""
    if not isinstance(value, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
        raise InvalidInput("invalid-address", "an IP address must be a string", field, value)
    text = str(value).strip()
    if "/" in text:
        raise InvalidInput(
            "invalid-address",
            f"{text!r} is a prefix, not a host address: drop the /length",
            field,
            value,
        )
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(
            "invalid-address", f"{text!r} is not an IPv4 or IPv6 address", field, value
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise InvalidInput(
            "invalid-address",
            f"{text!r} carries a zone index (%{address.scope_id}); give the address without it",
            field,
            value,
        )
    return address


def parse_prefix(value: object, field: str = "prefix") -> IPNetwork:
    """An IPv4 or IPv6 prefix; host bits set is an error that suggests the fix."""
    if not isinstance(value, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise InvalidInput("invalid-prefix", "a prefix must be a string", field, value)
    text = str(value).strip()
    if "/" not in text:
        raise InvalidInput(
            "invalid-prefix",
            f"{text!r} has no prefix length: write it as address/length",
            field,
            value,
        )
    if "%" in text:
        raise InvalidInput(
            "invalid-prefix", f"{text!r} carries a zone index; prefixes have none", field, value
        )
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise InvalidInput(
                "prefix-host-bits",
                f"{text!r} has host bits set; did you mean {fixed}?",
                field,
                value,
                {"suggestion": str(fixed)},
            ) from None
        raise InvalidInput(
            "invalid-prefix", f"{text!r} is not an IPv4 or IPv6 prefix", field, value
        ) from None


def family(value: IPAddress | IPNetwork) -> AddressFamily:
    return 4 if value.version == 4 else 6


def max_prefix_length(afi: AddressFamily) -> int:
    return 32 if afi == 4 else 128
