"""Autonomous System numbers (RFC 6793): parsing asplain and asdot, formatting."""

from __future__ import annotations

import re

from bgp_orchestrator.errors import InvalidInput

ASN_MIN = 1
ASN_MAX = 4_294_967_295  # 2**32 - 1

_ASPLAIN = re.compile(r"^(?:AS)?([0-9]{1,10})$", re.IGNORECASE)
_ASDOT = re.compile(r"^(?:AS)?([0-9]{1,5})\.([0-9]{1,5})$", re.IGNORECASE)


def parse_asn(value: object, field: str = "asn") -> int:
    """Return the ASN as an integer.

    Accepts an integer, ``"64500"``, ``"AS64500"``, and asdot (``"1.10"`` =
    65546, ``"AS1.10"``). Rejects 0 and anything above 4294967295: AS 0 is
    reserved (RFC 7607) and cannot be configured on a session.
    """
    if isinstance(value, bool):
        raise InvalidInput("invalid-asn", "an ASN must be a number, not a boolean", field, value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if match := _ASPLAIN.match(text):
            number = int(match.group(1))
        elif match := _ASDOT.match(text):
            high, low = int(match.group(1)), int(match.group(2))
            if high > 65535 or low > 65535:
                raise InvalidInput(
                    "invalid-asn",
                    f"asdot {text!r} has a part above 65535",
                    field,
                    value,
                )
            number = high * 65536 + low
        else:
            raise InvalidInput(
                "invalid-asn",
                f"{text!r} is not an ASN: use asplain (64500, AS64500) or asdot (1.10)",
                field,
                value,
            )
    else:
        raise InvalidInput(
            "invalid-asn",
            f"an ASN must be an integer or a string, got {type(value).__name__}",
            field,
            value,
        )
    if not ASN_MIN <= number <= ASN_MAX:
        raise InvalidInput(
            "invalid-asn",
            f"ASN {number} is out of range: valid ASNs are {ASN_MIN}..{ASN_MAX}",
            field,
            value,
        )
    return number


def format_asdot(asn: int) -> str:
    """asdot notation (RFC 5396): plain below 65536, ``high.low`` above."""
    return str(asn) if asn < 65536 else f"{asn >> 16}.{asn & 0xFFFF}"
