"""RPKI validated ROA payloads and route origin validation (RFC 6811).

Loads Routinator and rpki-client exports: CSV (``ASN,IP Prefix,Max Length[,Trust Anchor]``)
and JSON (``{"roas": [{"asn": "AS13335", "prefix": "1.0.0.0/24", "maxLength": 24, "ta": ...}]}``,
with ``asn`` as a number or "AS"-prefixed string).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import orjson

from bgp_orchestrator.bgp.prefix import Net, parse_net
from bgp_orchestrator.errors import ConfigurationError


class RovState(StrEnum):
    VALID = "valid"
    INVALID_ORIGIN = "invalid-origin"
    INVALID_LENGTH = "invalid-length"
    NOT_FOUND = "not-found"


@dataclass(frozen=True)
class Vrp:
    asn: int
    prefix: Net
    max_length: int


def _asn(text: object, where: str) -> int:
    value = str(text).strip()
    if value.upper().startswith("AS"):
        value = value[2:]
    if not value.isdigit() or int(value) > 4_294_967_295:
        raise ConfigurationError("invalid-vrp", f"{where}: {text!r} is not an ASN")
    return int(value)


def _vrp(asn: object, prefix: object, max_length: object, where: str) -> Vrp:
    try:
        net = parse_net(str(prefix).strip())
    except ValueError as exc:
        raise ConfigurationError("invalid-vrp", f"{where}: {exc}") from None
    try:
        max_len = int(str(max_length).strip()) if str(max_length).strip() else net.length
    except ValueError:
        raise ConfigurationError("invalid-vrp", f"{where}: max length {max_length!r}") from None
    width = 32 if net.afi == 4 else 128
    if not net.length <= max_len <= width:
        raise ConfigurationError(
            "invalid-vrp", f"{where}: max length {max_len} outside {net.length}..{width}"
        )
    return Vrp(_asn(asn, where), net, max_len)


def parse_csv(text: str, name: str = "VRP CSV") -> list[Vrp]:
    out = []
    reader = csv.reader(io.StringIO(text))
    for number, row in enumerate(reader, start=1):
        if not row or row[0].startswith("#"):
            continue
        if number == 1 and not row[0].strip().upper().lstrip("AS").isdigit():
            continue  # header line
        if len(row) < 3:
            raise ConfigurationError(
                "invalid-vrp", f"{name} line {number}: expected ASN,prefix,max"
            )
        out.append(_vrp(row[0], row[1], row[2], f"{name} line {number}"))
    return out


def parse_json(text: str | bytes, name: str = "VRP JSON") -> list[Vrp]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError("invalid-vrp", f"{name} is not JSON: {exc}") from None
    roas = data.get("roas") if isinstance(data, dict) else None
    if not isinstance(roas, list):
        raise ConfigurationError("invalid-vrp", f"{name}: expected an object with a 'roas' list")
    out = []
    for i, roa in enumerate(roas):
        where = f"{name} roas[{i}]"
        if not isinstance(roa, dict):
            raise ConfigurationError("invalid-vrp", f"{where} is not an object")
        out.append(
            _vrp(
                roa.get("asn"),
                roa.get("prefix"),
                roa.get("maxLength", roa.get("max_length", "")),
                where,
            )
        )
    return out


def load(path: str | Path) -> list[Vrp]:
    """VRPs from a Routinator/rpki-client CSV or JSON file (format from its content)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            "vrp-file-unreadable", f"cannot read {path}: {exc.strerror}"
        ) from None
    if raw.lstrip()[:1] in (b"{", b"["):
        return parse_json(raw, str(path))
    return parse_csv(raw.decode("utf-8", errors="strict"), str(path))


class VrpIndex:
    """Covering-VRP lookups by prefix length, and route origin validation."""

    def __init__(self, vrps: Iterable[Vrp]) -> None:
        self._by_length: dict[int, dict[int, dict[int, list[tuple[int, int]]]]] = {4: {}, 6: {}}
        count = 0
        for vrp in vrps:
            table = self._by_length[vrp.prefix.afi].setdefault(vrp.prefix.length, {})
            table.setdefault(vrp.prefix.value, []).append((vrp.asn, vrp.max_length))
            count += 1
        self.count = count
        self._lengths = {afi: tuple(sorted(t)) for afi, t in self._by_length.items()}

    def __len__(self) -> int:
        return self.count

    def covering(self, net: Net) -> list[tuple[int, int]]:
        """(asn, max_length) of every VRP covering ``net``."""
        out: list[tuple[int, int]] = []
        tables = self._by_length[net.afi]
        width = 32 if net.afi == 4 else 128
        for length in self._lengths[net.afi]:
            if length > net.length:
                break
            found = tables[length].get((net.value >> (width - length)) << (width - length))
            if found:
                out.extend(found)
        return out

    def validate(self, net: Net, origin: int | None) -> RovState:
        """RFC 6811: valid if a covering VRP matches origin and length."""
        covering = self.covering(net)
        if not covering:
            return RovState.NOT_FOUND
        length_only = False
        for asn, max_length in covering:
            if origin is not None and asn == origin and asn != 0:
                if net.length <= max_length:
                    return RovState.VALID
                length_only = True
        return RovState.INVALID_LENGTH if length_only else RovState.INVALID_ORIGIN
