"""Shared helpers of the parsers: the Malformed error, prefix and path checks."""

from __future__ import annotations

from typing import Any

from bgp_orchestrator.bgp.prefix import format_net, parse_net
from bgp_orchestrator.bgp.update import AsPath, AsPathElement
from bgp_orchestrator.errors import BgpoError

ASN_MAX = 4_294_967_295


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
    if not isinstance(text, str):
        raise Malformed("invalid-prefix", f"prefix must be a string, got {type(text).__name__}")
    try:
        return format_net(parse_net(text.strip()))
    except ValueError as exc:
        raise Malformed("invalid-prefix", str(exc), "prefix", text) from None


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
    if not isinstance(raw, list | tuple):
        raise Malformed("invalid-as-path", f"path must be a list, got {type(raw).__name__}")
    out: list[AsPathElement] = []
    for element in raw:
        out.append(as_set(element) if isinstance(element, list | tuple) else as_number(element))
    return tuple(out)
