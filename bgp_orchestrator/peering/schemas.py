"""Request and response bodies of the peering API."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bgp_orchestrator.peering.fields import (
    ASN,
    HostAddress,
    Name,
    PolicyName,
    Prefix,
    SecretRef,
    TenantSlug,
    Text,
)

Interconnect = Literal["ixp", "pni"]
AdminState = Literal["enabled", "disabled", "maintenance"]
Relationship = Literal["upstream", "peer", "customer"]


class Afi(IntEnum):
    """Address family: 4 or 6 (query parameters arrive as text, so an IntEnum)."""

    IPV4 = 4
    IPV6 = 6


T = TypeVar("T")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Number of objects matching the filters")
    limit: int
    offset: int


# --- tenants -----------------------------------------------------------------


class TenantCreate(_In):
    slug: TenantSlug
    name: Name


class Tenant(_Out):
    id: int
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime


# --- autonomous systems -------------------------------------------------------


class AsnCreate(_In):
    asn: ASN
    name: Name = ""
    description: Text = ""


class AsnUpdate(_In):
    name: Name | None = None
    description: Text | None = None


class AutonomousSystem(_Out):
    id: int
    asn: int
    asdot: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


# --- neighbour ASNs ------------------------------------------------------------


class NeighborCreate(_In):
    asn: ASN
    relationship: Relationship
    description: Text = ""


class NeighborUpdate(_In):
    relationship: Relationship | None = None
    description: Text | None = None


class Neighbor(_Out):
    id: int
    asn: int
    relationship: Relationship
    description: str
    created_at: datetime
    updated_at: datetime


# --- sessions --------------------------------------------------------------------


class SessionCreate(_In):
    local_asn: ASN = Field(description="One of the tenant's own ASNs")
    peer_asn: ASN
    peer_address: HostAddress
    local_address: HostAddress | None = None
    peering_lan: Prefix | None = Field(
        None, description="The IXP peering LAN or interconnect subnet holding peer_address"
    )
    interconnect: Interconnect = Field(description="ixp: at an exchange; pni: private interconnect")
    ixp_name: Name | None = None
    description: Text = ""
    max_prefixes: int | None = Field(None, ge=1, le=10_000_000)
    import_policy: PolicyName | None = None
    export_policy: PolicyName | None = None
    admin_state: AdminState = "enabled"
    md5_secret_ref: SecretRef | None = None


class SessionUpdate(_In):
    local_asn: ASN | None = None
    peer_asn: ASN | None = None
    peer_address: HostAddress | None = None
    local_address: HostAddress | None = None
    peering_lan: Prefix | None = None
    interconnect: Interconnect | None = None
    ixp_name: Name | None = None
    description: Text | None = None
    max_prefixes: int | None = Field(None, ge=1, le=10_000_000)
    import_policy: PolicyName | None = None
    export_policy: PolicyName | None = None
    admin_state: AdminState | None = None
    md5_secret_ref: SecretRef | None = None


class Session(_Out):
    id: int
    local_asn: int
    peer_asn: int
    peer_address: str
    local_address: str | None
    afi: Literal[4, 6]
    peering_lan: str | None
    interconnect: Interconnect
    ixp_name: str | None
    description: str
    max_prefixes: int | None
    import_policy: str | None
    export_policy: str | None
    admin_state: AdminState
    md5_secret_ref: str | None
    created_at: datetime
    updated_at: datetime


# --- prefixes ----------------------------------------------------------------------


class PrefixCreate(_In):
    prefix: Prefix
    origin_asns: list[ASN] = Field(
        default_factory=list,
        max_length=64,
        description="ASNs authorised to originate the prefix (required when announced)",
    )
    max_length: int | None = Field(
        None, ge=0, le=128, description="Longest more-specific allowed; default: the prefix length"
    )
    announced: bool = Field(True, description="False: the prefix must not appear in BGP at all")
    description: Text = ""
    upstream_asns: list[ASN] = Field(
        default_factory=list,
        max_length=64,
        description="This prefix's own upstreams (and its more-specifics'); with peer_asns, "
        "replaces the tenant's neighbour list for it. Empty: the tenant's list applies.",
    )
    peer_asns: list[ASN] = Field(
        default_factory=list, max_length=64, description="This prefix's own peers."
    )


class PrefixUpdate(_In):
    origin_asns: list[ASN] | None = Field(None, max_length=64)
    max_length: int | None = Field(None, ge=0, le=128)
    announced: bool | None = None
    description: Text | None = None
    upstream_asns: list[ASN] | None = Field(None, max_length=64)
    peer_asns: list[ASN] | None = Field(None, max_length=64)


class MonitoredPrefix(_Out):
    id: int
    prefix: str
    afi: Literal[4, 6]
    origin_asns: list[int]
    max_length: int
    announced: bool
    description: str
    upstream_asns: list[int]
    peer_asns: list[int]
    created_at: datetime
    updated_at: datetime
