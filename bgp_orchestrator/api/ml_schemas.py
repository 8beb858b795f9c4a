"""Request and response bodies of the flap-prediction and feature endpoints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SESSION_ID_PATTERN = r"^[^\s]{1,300}$"
# Features are read through Feast per request; predictions come from the
# predictor's copy, so one request may score many more sessions.
MAX_SESSIONS = 1000
MAX_PREDICT_SESSIONS = 10_000
_SPACE = re.compile(r"\s")


class SessionsRequest(BaseModel):
    """One or many BGP sessions, named ``collector|peer address``."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[str] = Field(
        min_length=1,
        max_length=MAX_SESSIONS,
        examples=[["rrc00|192.0.2.1", "ams1|2001:db8::1"]],
    )

    @field_validator("sessions")
    @classmethod
    def _valid_ids(cls, value: list[str]) -> list[str]:
        for sid in value:
            if not sid or len(sid) > 300 or _SPACE.search(sid):
                raise ValueError(f"session id {sid[:50]!r} must be 1-300 characters, no spaces")
        if len(set(value)) != len(value):
            raise ValueError("session ids must not repeat")
        return value


class PredictRequest(SessionsRequest):
    """Up to 10,000 sessions: scoring every session takes few requests."""

    sessions: list[str] = Field(
        min_length=1,
        max_length=MAX_PREDICT_SESSIONS,
        examples=[["rrc00|192.0.2.1", "ams1|2001:db8::1"]],
    )


class Prediction(BaseModel):
    session_id: str
    probability: float | None = Field(None, description="chance of a flap within the horizon")
    model_version: int | None = None
    features: dict[str, float] | None = Field(None, description="the inputs the model saw")
    error: str | None = Field(None, description="why there is no prediction for this session")


class PredictionsOut(BaseModel):
    predictions: list[Prediction] = Field(description="your sessions' answers, in order")
    not_found: list[str] = Field(
        default_factory=list, description="the sessions asked for that are not yours"
    )
    horizon_s: int
    withdraw_share: float


class SessionFeatures(BaseModel):
    session_id: str
    features: dict[str, float | None]
    found: bool


class FeaturesOut(BaseModel):
    sessions: list[SessionFeatures] = Field(description="your sessions' features, in order")
    not_found: list[str] = Field(
        default_factory=list, description="the sessions asked for that are not yours"
    )


class JobOut(BaseModel):
    job_id: str
    status_url: str


class ModelOut(BaseModel):
    version: int
    created_at: datetime
    features: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    data_from: datetime
    data_to: datetime
    training_rows: int
    artifact_uri: str
    onnx_max_diff: float
    active: bool
    activated_at: datetime | None
