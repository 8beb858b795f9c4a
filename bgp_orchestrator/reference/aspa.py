"""ASPA objects (RPKI Autonomous System Provider Authorization) and AS_PATH verification.

An ASPA says which ASes a customer AS authorises as its providers. With them a
path can be verified deterministically (draft-ietf-sidrops-aspa-verification):
each hop of a path is judged with :meth:`AspaIndex.hop`, and the route is
``valid``, ``invalid`` or ``unknown`` by the **upstream** procedure (a route
received from a customer or a lateral peer: every hop must go up) or the
**downstream** procedure (a route received from a provider: the path may go up,
across once and down, the "up-ramp" and "down-ramp" meeting).

Loads validated ASPA payloads as the relying-party software exports them:

* rpki-client's JSON: ``{"aspas": [{"customer_asid": 64496, "providers": [64497]}]}``
  (older releases wrote the providers as objects ``{"asid": 64497, ...}``);
* Routinator's ``jsonext``/``json``: ``{"aspas": [{"customer": "AS64496",
  "providers": ["AS64497"]}]}``.

The same file may also hold the VRPs (``roas``); they are ignored here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path

import orjson

from bgp_orchestrator.bgp.update import AsPathElement
from bgp_orchestrator.errors import ConfigurationError

ASN_MAX = 4_294_967_295


class Hop(IntEnum):
    """``hop(customer, provider)`` of the draft."""

    PROVIDER_PLUS = 0  # the customer's ASPA lists the provider
    NOT_PROVIDER_PLUS = 1  # the customer has an ASPA and it does not list the provider
    NO_ATTESTATION = 2  # the customer published no ASPA


class AspaState(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"


UPSTREAM = "upstream"
DOWNSTREAM = "downstream"


@dataclass(frozen=True, slots=True)
class Aspa:
    customer: int
    providers: frozenset[int]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one verification and, when invalid, the hops that failed.

    ``failed`` holds ``(customer, provider)`` pairs whose ``hop`` is Not Provider+
    and that decided the outcome: the end of the up-ramp (and of the down-ramp for
    the downstream procedure). ``reason`` says why in words.
    """

    state: AspaState
    procedure: str
    reason: str
    failed: tuple[tuple[int, int], ...] = ()
    #: downstream invalid: the ASes between the ramps, where the valley (or leak) is
    between: tuple[int, ...] = ()


def _asn(value: object, where: str) -> int:
    if isinstance(value, dict):  # rpki-client before 8.x: {"asid": N, "afi_limit": ...}
        value = value.get("asid", value.get("provider"))
    text = str(value).strip()
    if text[:2].upper() == "AS":
        text = text[2:]
    if not text.isdigit() or int(text) > ASN_MAX:
        raise ConfigurationError("invalid-aspa", f"{where}: {value!r} is not an ASN")
    return int(text)


def parse_json(text: str | bytes, name: str = "ASPA JSON") -> list[Aspa]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError("invalid-aspa", f"{name} is not JSON: {exc}") from None
    items = data.get("aspas") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigurationError("invalid-aspa", f"{name}: expected an object with an 'aspas' list")
    return parse_items(items, name)


def parse_items(items: list[object], name: str = "ASPA list") -> list[Aspa]:
    """The objects of an ``aspas`` list; ConfigurationError naming the bad one."""
    merged: dict[int, set[int]] = {}
    for i, item in enumerate(items):
        where = f"{name} aspas[{i}]"
        if not isinstance(item, dict):
            raise ConfigurationError("invalid-aspa", f"{where} is not an object")
        customer = item.get("customer_asid", item.get("customer"))
        if customer is None:
            raise ConfigurationError("invalid-aspa", f"{where} names no customer AS")
        providers = item.get("providers")
        if not isinstance(providers, list):
            raise ConfigurationError("invalid-aspa", f"{where}: 'providers' must be a list")
        asn = _asn(customer, f"{where} customer")
        # Several objects for one customer (one per CA, say) are one provider set.
        merged.setdefault(asn, set()).update(
            _asn(p, f"{where} providers[{j}]") for j, p in enumerate(providers)
        )
    return [Aspa(customer, frozenset(providers)) for customer, providers in merged.items()]


def load(path: str | Path) -> list[Aspa]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            "aspa-file-unreadable", f"cannot read {path}: {exc.strerror}"
        ) from None
    return parse_json(raw, str(path))


class AspaIndex:
    """Customer AS -> its authorised providers, and the two verification procedures."""

    def __init__(self, aspas: Iterable[Aspa]) -> None:
        self._providers: dict[int, frozenset[int]] = {}
        for aspa in aspas:
            self._providers[aspa.customer] = self._providers.get(aspa.customer, frozenset()) | (
                aspa.providers
            )

    def __len__(self) -> int:
        return len(self._providers)

    def providers(self, customer: int) -> frozenset[int] | None:
        return self._providers.get(customer)

    def hop(self, customer: int, provider: int) -> Hop:
        providers = self._providers.get(customer)
        if providers is None:
            return Hop.NO_ATTESTATION
        # AS 0 in a provider set means "no providers": it matches no real hop.
        return Hop.PROVIDER_PLUS if provider in providers else Hop.NOT_PROVIDER_PLUS

    def verify(self, path: Sequence[AsPathElement], procedure: str) -> Verdict:
        """``path`` as received, neighbour first and origin last, prepending removed."""
        if not path:
            return Verdict(AspaState.INVALID, procedure, "the AS_PATH is empty")
        if any(isinstance(element, tuple) for element in path):
            return Verdict(AspaState.INVALID, procedure, "the AS_PATH holds an AS_SET")
        asns: list[int] = list(reversed(path))  # type: ignore[arg-type]  # AS(1) .. AS(N)
        if procedure == UPSTREAM:
            return self._upstream(asns)
        return self._downstream(asns)

    def _upstream(self, asns: list[int]) -> Verdict:
        unknown = None
        for i in range(len(asns) - 1):
            customer, provider = asns[i], asns[i + 1]
            hop = self.hop(customer, provider)
            if hop is Hop.NOT_PROVIDER_PLUS:
                return Verdict(
                    AspaState.INVALID,
                    UPSTREAM,
                    f"AS{customer} sent the route to AS{provider}, which its ASPA does not "
                    "list as a provider: a route received from a customer or a peer must "
                    "have gone up at every hop",
                    ((customer, provider),),
                )
            if hop is Hop.NO_ATTESTATION and unknown is None:
                unknown = customer
        if unknown is not None:
            return Verdict(AspaState.UNKNOWN, UPSTREAM, f"AS{unknown} has published no ASPA object")
        return Verdict(AspaState.VALID, UPSTREAM, "every hop is authorised by an ASPA")

    def _ramp(self, asns: Sequence[int]) -> tuple[int, int]:
        """(max, min) ramp length walking ``asns`` from its start: how far the hops may
        go up (max: until a Not Provider+ hop; min: until any hop not Provider+)."""
        n = len(asns)
        longest = shortest = n
        for i in range(n - 1):
            hop = self.hop(asns[i], asns[i + 1])
            if shortest == n and hop is not Hop.PROVIDER_PLUS:
                shortest = i + 1
            if hop is Hop.NOT_PROVIDER_PLUS:
                longest = i + 1
                break
        return longest, shortest

    def _downstream(self, asns: list[int]) -> Verdict:
        n = len(asns)
        if n <= 2:
            return Verdict(
                AspaState.VALID, DOWNSTREAM, "a path of one or two ASes cannot hold a leak"
            )
        max_up, min_up = self._ramp(asns)
        down = asns[::-1]  # from the neighbour towards the origin
        max_down, min_down = self._ramp(down)
        if max_up + max_down < n:
            failed = ((asns[max_up - 1], asns[max_up]), (down[max_down - 1], down[max_down]))
            up_c, up_p = failed[0]
            down_c, down_p = failed[1]
            between = tuple(asns[max_up : n - max_down])
            return Verdict(
                AspaState.INVALID,
                DOWNSTREAM,
                f"the up-ramp from the origin ends at AS{up_c} (its ASPA does not list "
                f"AS{up_p} as a provider) and the down-ramp ends at AS{down_c} (its ASPA "
                f"does not list AS{down_p}): "
                + ", ".join(f"AS{a}" for a in between)
                + " carried the route between them against the authorisations: a valley, "
                "a route leak",
                failed,
                between,
            )
        if min_up + min_down < n:
            return Verdict(
                AspaState.UNKNOWN,
                DOWNSTREAM,
                "the ramps meet only through ASes that published no ASPA object",
            )
        return Verdict(AspaState.VALID, DOWNSTREAM, "up-ramp and down-ramp meet: no valley")
