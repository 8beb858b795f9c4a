"""Request and response bodies of the anomaly endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bgp_orchestrator.anomaly.series import METRICS, SeriesKey

MAX_DETECT_SERIES = 100
Severity = Literal["low", "medium", "high", "critical"]


class AnomalyOut(BaseModel):
    id: int
    run_id: int | None
    metric: str
    session: str
    peer_asn: int
    start_at: datetime
    end_at: datetime = Field(description="timestamp of the last anomalous step")
    points: int = Field(description="consecutive anomalous steps merged into this anomaly")
    peak_at: datetime
    score: float = Field(description="largest deviation from the expected value, in sigmas")
    actual: float = Field(description="value at the peak")
    expected: float = Field(description="the model's expected value at the peak")
    lower_bound: float
    upper_bound: float
    direction: Literal["above", "below"]
    severity: Severity
    engine: str
    detected_at: datetime
    updated_at: datetime


class WindowPoint(BaseModel):
    timestamp: datetime
    actual: float | None
    expected: float | None
    lower: float | None
    upper: float | None


class AnomalyDetail(AnomalyOut):
    window: list[WindowPoint] = Field(description="the series around the anomaly, with its band")


class DetectRequest(BaseModel):
    """Fit these series now and store what they show."""

    model_config = ConfigDict(extra="forbid")

    series: list[str] = Field(
        min_length=1,
        max_length=MAX_DETECT_SERIES,
        description="series ids, ``metric/session``",
        examples=[["bgpo_session_update_rate/rrc00|192.0.2.1"]],
    )
    days: float = Field(14.0, gt=0, le=90, description="history to fit")
    engine: Literal["statsforecast", "prophet"] = "statsforecast"
    model: Literal["seasonal_es", "seasonal_es_optimized", "mstl", "autoets"] = "seasonal_es"
    resolution_s: int = Field(3600, ge=60, le=86400, description="step of the fitted series")
    season_length: int = Field(24, ge=2, le=2000, description="steps per season")
    sigma: float = Field(3.0, gt=0, le=20, description="band half-width in sigmas")
    alpha: float = Field(0.05, gt=0, lt=1, description="smoothing of seasonal_es")

    @field_validator("series")
    @classmethod
    def _valid_series(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                key = SeriesKey.parse(item)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
            if key.metric not in METRICS:
                raise ValueError(f"unknown metric {key.metric[:80]!r}; known: {', '.join(METRICS)}")
            if len(key.session) > 300 or any(c.isspace() for c in key.session):
                raise ValueError(f"session {key.session[:50]!r}: 1-300 characters, no spaces")
        if len(set(value)) != len(value):
            raise ValueError("series must not repeat")
        return value


class SkippedOut(BaseModel):
    series: str
    reason: str
    detail: str


class DetectOut(BaseModel):
    fitted: int
    skipped: list[SkippedOut]
    anomalies: list[AnomalyOut]


class SummaryOut(BaseModel):
    total: int
    by_severity: dict[str, int]
    by_metric: dict[str, int]
    top_peers: list[dict[str, Any]]
    last_run: dict[str, Any] | None
