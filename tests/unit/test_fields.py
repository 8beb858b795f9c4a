import pytest
from pydantic import BaseModel, ValidationError

from bgp_orchestrator.peering.fields import ASN, HostAddress, NetworkOrAddress, Prefix, Text
from bgp_orchestrator.peering.schemas import PrefixCreate, SessionCreate


class M(BaseModel):
    asn: ASN | None = None
    addr: HostAddress | None = None
    prefix: Prefix | None = None
    net: NetworkOrAddress | None = None
    text: Text | None = None


def test_valid_values_are_normalised() -> None:
    m = M(asn="AS1.10", addr="2001:DB8::1", prefix="2001:DB8::/32", net="192.0.2.7", text="ok")
    assert (m.asn, m.addr, m.prefix, m.net) == (65546, "2001:db8::1", "2001:db8::/32", "192.0.2.7")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("asn", 0, "out of range"),
        ("asn", 4294967296, "out of range"),
        ("addr", "10.0.0.300", "not an IPv4 or IPv6"),
        ("prefix", "10.0.0.1/8", "host bits"),
        ("text", "nul\x00byte", "control characters"),
        ("text", "lone \ud800 surrogate", "string"),
    ],
)
def test_errors_are_reported_on_the_field(field: str, value: object, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        M(**{field: value})
    (error,) = info.value.errors()
    assert error["loc"] == (field,)
    assert needle in error["msg"]


def test_asn_schema_documents_both_notations() -> None:
    schema = SessionCreate.model_json_schema()["properties"]["peer_asn"]
    kinds = {alt["type"] for alt in schema["anyOf"]}
    assert kinds == {"integer", "string"}
    integer = next(alt for alt in schema["anyOf"] if alt["type"] == "integer")
    assert integer["minimum"] == 1 and integer["maximum"] == 4294967295


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        PrefixCreate(prefix="192.0.2.0/24", origin_asns=[64500], colour="blue")  # type: ignore[call-arg]


def test_secret_refs_must_be_references() -> None:
    base = {
        "local_asn": 64500,
        "peer_asn": 64501,
        "peer_address": "192.0.2.1",
        "interconnect": "pni",
    }
    assert SessionCreate(**base, md5_secret_ref="vault:secret/bgp#md5").md5_secret_ref
    with pytest.raises(ValidationError):
        SessionCreate(**base, md5_secret_ref="hunter2")
