"""Request and response bodies of the conflicts and webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from bgp_orchestrator.detection.conflict import ConflictType, Severity
from bgp_orchestrator.peering.fields import Name

ConflictState = Literal["ongoing", "resolved", "acknowledged", "ignored"]
Scope = Literal["tenant", "global", "all"]
PrefixMatch = Literal["exact", "covered", "covering"]


class ConflictOut(BaseModel):
    id: int
    type: ConflictType
    severity: Severity
    state: ConflictState
    scope: Literal["tenant", "global"]
    prefix: str
    origin_asn: int | None
    detail_key: str = Field(
        description="What distinguishes this conflict (leak link, bogon ASN...)"
    )
    as_path: str
    monitored_prefix: str | None
    peers: list[str] = Field(description="Sessions (collector|peer address) that saw it, up to 100")
    peer_count: int
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    state_changed_at: datetime
    details: dict[str, Any]
    created_at: datetime


class StateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=1000)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Name
    url: HttpUrl = Field(description="http(s) URL that receives a POST per conflict event")
    format: Literal["json", "slack"] = Field("json", description="json, or Slack-compatible")
    min_severity: Severity = Severity.MEDIUM
    types: list[ConflictType] = Field(
        default_factory=list, max_length=20, description="Only these conflict types (empty: all)"
    )
    enabled: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Name | None = None
    url: HttpUrl | None = None
    format: Literal["json", "slack"] | None = None
    min_severity: Severity | None = None
    types: list[ConflictType] | None = Field(None, max_length=20)
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: int
    name: str
    url: str
    format: Literal["json", "slack"]
    min_severity: Severity
    types: list[ConflictType]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, whsec_...), shown only in this "
        "answer: every delivery is signed with it (webhook-signature header)"
    )


class WebhookSecret(BaseModel):
    id: int
    secret: str = Field(description="The new signing secret, shown only in this answer")


DeliveryStatus = Literal["pending", "delivered", "failed"]


class DeliveryOut(BaseModel):
    """One conflict event sent (or to be sent) to one webhook."""

    id: int = Field(description="Also sent as the X-BGPO-Delivery header")
    webhook_id: int
    event_id: int
    event: str
    conflict_id: int
    status: DeliveryStatus = Field(description="pending, delivered, or failed (given up)")
    attempts: int = Field(description="Attempts made so far (a lease counts as one)")
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When a pending delivery goes next")
    delivered_at: datetime | None
    failed_at: datetime | None = Field(description="When it was given up")
