"""Error bodies (RFC 9457 problem details) and the one exception-to-status map."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bgp_orchestrator.errors import (
    BgpoError,
    ConfigConflict,
    ConfigurationError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS_BY_ERROR: tuple[tuple[type[BgpoError], int], ...] = (
    (InvalidInput, 422),
    (NotFound, 404),
    (ConfigConflict, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (ServiceUnavailable, 503),
    (ConfigurationError, 500),
)

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with stored configuration",
    413: "Request body too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class FieldError(BaseModel):
    location: str = Field(description="body, query, path or header")
    field: str
    message: str


class Problem(BaseModel):
    """An error: ``code`` is stable and machine-readable; ``detail`` says what to do."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    value: Any = None
    details: dict[str, Any] | None = None
    errors: list[FieldError] | None = None


def status_for(exc: BgpoError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    value: Any = None,
    details: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:bgpo:error:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    if value is not None:
        body["value"] = value if isinstance(value, int | float | bool | str | list) else str(value)
    if details:
        body["details"] = details
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        location = loc[0] if loc else "body"
        field = ".".join(loc[1:]) if len(loc) > 1 else location
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        out.append({"location": location, "field": field, "message": message})
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(BgpoError)
    async def _bgpo_error(request: Request, exc: BgpoError) -> JSONResponse:
        status = status_for(exc)
        headers = None
        errors = None
        if isinstance(exc, ServiceUnavailable | RateLimited):
            headers = {"Retry-After": str(exc.details.get("retry_after_s", 5))}
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": 'Bearer realm="bgpo"'}
        if isinstance(exc, InvalidInput) and exc.field:
            errors = [{"location": "body", "field": exc.field, "message": exc.message}]
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return problem_response(
            status,
            exc.code,
            exc.message,
            field=exc.field,
            value=exc.value,
            details=exc.details or None,
            errors=errors,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            422,
            "invalid-input",
            summary or "the request is not valid",
            field=errors[0]["field"] if errors else None,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
            exc.status_code, "http-error"
        )
        return problem_response(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal-error", "an unexpected error occurred; it has been logged"
        )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can return."""
    return {
        status: {
            "model": Problem,
            "description": TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
