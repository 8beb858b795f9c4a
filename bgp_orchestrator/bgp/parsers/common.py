"""Shared helpers of the parsers: the Malformed error, prefix and path checks.

A live feed repeats prefixes a lot (the same table flaps, every peer announces the
same routes), so :func:`canonical_prefix` remembers the canonical form of the prefix
texts it saw recently: a dictionary lookup instead of parsing and formatting again.
"""

from __future__ import annotations

from typing import Any

from bgp_orchestrator.bgp.prefix import parse_canonical, remember_bucket
from bgp_orchestrator.bgp.recent import Recent
from bgp_orchestrator.bgp.update import AsPath, AsPathElement
from bgp_orchestrator.errors import BgpoError

ASN_MAX = 4_294_967_295
_INT_ONLY = frozenset({int})

#: Prefix texts seen recently -> their canonical form. Each generation holds up to
#: this many (about 60 bytes each beside the strings the parsed updates hold anyway):
#: a full table (~1.2M prefixes) fits in the two, so a replay of a feed that walks the
#: whole table parses each prefix once (measured on a 1,000,000-message RIS Live
#: stream over a 1M-prefix table: 832,000 parses instead of 1,393,000 with 2^18, a
#: fifth less CPU, 65 MB more memory).
PREFIX_CACHE_SIZE = 1 << 20
_prefixes: Recent[str, str] = Recent(PREFIX_CACHE_SIZE)


class Malformed(BgpoError):
    """Input a source could not turn into updates; goes to the dead-letter topic."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        value: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code, message, field, value, details)


def canonical_prefix(text: object) -> str:
    """Validate and normalise a prefix; Malformed if it is not one."""
    if type(text) is str:
        hit = _prefixes.young.get(text)
        if hit is not None:
            return hit
        hit = _prefixes.recall(text)
        if hit is not None:
            return hit
    elif not isinstance(text, str):
        raise Malformed("invalid-prefix", f"prefix must be a string, got {type(text).__name__}")
    try:
        net, canonical = parse_canonical(text.strip())
    except ValueError as exc:
        raise Malformed("invalid-prefix", str(exc), "prefix", text) from None
    remember_bucket(canonical, net)  # the publisher's partition key, while it is at hand
    if type(text) is str:  # a str subclass may hash or compare differently: not remembered
        # the input object when it is already canonical: one string for both
        _prefixes.remember(text, text if canonical == text else canonical)
    return canonical


def as_number(value: object) -> int:
    if isinstance(value, bool):
        raise Malformed("invalid-asn", "an ASN is not a boolean")
    try:
        number = int(value)  # type: ignore[call-overload]
        assert isinstance(number, int)
    except (TypeError, ValueError):
        raise Malformed("invalid-asn", f"{value!r} is not an ASN") from None
    if not 0 <= number <= ASN_MAX:
        raise Malformed("invalid-asn", f"ASN {number} out of range")
    return number


def as_set(values: object) -> tuple[int, ...]:
    if not isinstance(values, list | tuple):
        raise Malformed("invalid-as-path", f"AS_SET must be a list, got {values!r}")
    return tuple(sorted({as_number(v) for v in values}))


def path_from_list(raw: object) -> AsPath:
    """RIS Live style: ``[1, 2, [3, 4]]`` (nested list = AS_SET)."""
    if type(raw) is list:
        # The common case, checked in C: only plain ints (no bools, floats, strings or
        # sets), all in range. Anything else takes the element-by-element path below,
        # which accepts and rejects exactly what it always did.
        path = tuple(raw)
        if _INT_ONLY.issuperset(map(type, path)) and (
            not path or (min(path) >= 0 and max(path) <= ASN_MAX)
        ):
            return path
    if not isinstance(raw, list | tuple):
        raise Malformed("invalid-as-path", f"path must be a list, got {type(raw).__name__}")
    out: list[AsPathElement] = []
    for element in raw:
        out.append(as_set(element) if isinstance(element, list | tuple) else as_number(element))
    return tuple(out)
