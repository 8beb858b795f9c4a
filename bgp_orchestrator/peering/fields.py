"""Validated field types shared by the API schemas.

Each type turns a domain error (:class:`InvalidInput`) into a ``ValueError``
so that pydantic reports it against the field that carried it, and publishes
a JSON schema precise enough for clients and for schemathesis.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.model.asn import ASN_MAX, ASN_MIN, parse_asn
from bgp_orchestrator.model.net import parse_address, parse_prefix


def _as_value_error(func: Any) -> Any:
    def wrapper(value: Any) -> Any:
        try:
            return func(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    return wrapper


def _asn(value: Any) -> int:
    return parse_asn(value)


def _address(value: Any) -> str:
    return str(parse_address(value))


def _prefix(value: Any) -> str:
    return str(parse_prefix(value))


def _network_or_address(value: Any) -> str:
    if isinstance(value, str) and "/" not in value:
        return str(parse_address(value))
    return str(parse_prefix(value))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogates)") from None
    return value


ASN_PATTERN = r"^(?:[Aa][Ss])?(?:[0-9]{1,10}|[0-9]{1,5}\.[0-9]{1,5})$"

ASN = Annotated[
    int,
    BeforeValidator(_as_value_error(_asn)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": ASN_MIN, "maximum": ASN_MAX},
                {"type": "string", "pattern": ASN_PATTERN},
            ],
            "description": "AS number, asplain (64500, AS64500) or asdot (1.10); 1..4294967295",
            "examples": [64500, "AS64500", "1.10"],
        },
        mode="validation",
    ),
    WithJsonSchema(
        {"type": "integer", "minimum": ASN_MIN, "maximum": ASN_MAX}, mode="serialization"
    ),
]

HostAddress = Annotated[
    str,
    BeforeValidator(_as_value_error(_address)),
    WithJsonSchema(
        {
            "type": "string",
            "description": "IPv4 or IPv6 host address, returned in canonical form",
            "examples": ["192.0.2.1", "2001:db8::1"],
            "maxLength": 64,
        }
    ),
]

Prefix = Annotated[
    str,
    BeforeValidator(_as_value_error(_prefix)),
    WithJsonSchema(
        {
            "type": "string",
            "description": "IPv4 or IPv6 prefix without host bits (address/length)",
            "examples": ["192.0.2.0/24", "2001:db8::/32"],
            "maxLength": 64,
        }
    ),
]

Text = Annotated[str, Field(max_length=1000), AfterValidator(_clean_text)]
SearchText = Annotated[str, AfterValidator(_clean_text)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_clean_text)]

PolicyName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.:\-]{1,128}$",
        description="Name of a routing policy / route-map configured on the router",
        examples=["IMPORT-IXP-PEERS"],
    ),
]

SECRET_REF_SCHEMES = ("vault", "env", "file", "k8s", "aws-sm", "gcp-sm", "azure-kv")
SecretRef = Annotated[
    str,
    Field(
        pattern=r"^(?:" + "|".join(SECRET_REF_SCHEMES) + r"):[!-~]{1,500}$",
        description="Where the MD5 secret lives, never the secret itself: "
        + ", ".join(f"{s}:..." for s in SECRET_REF_SCHEMES),
        examples=["vault:secret/bgp/ams-ix/as64500#md5"],
    ),
]

TenantSlug = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Lower-case tenant identifier",
        examples=["acme-networks"],
    ),
]

NetworkOrAddress = Annotated[
    str,
    BeforeValidator(_as_value_error(_network_or_address)),
    WithJsonSchema(
        {
            "type": "string",
            "description": "An IPv4/IPv6 prefix (address/length) or a host address",
            "examples": ["192.0.2.0/24", "192.0.2.7"],
            "maxLength": 64,
        }
    ),
]
