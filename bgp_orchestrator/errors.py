"""One root error class with a machine-readable code and the offending value.

Every error that crosses a boundary (HTTP, CLI, a Ray actor call) is a
:class:`BgpoError`. All constructor arguments are passed to
``Exception.__init__`` so that instances pickle and unpickle unchanged, which
Ray needs to carry them between processes. HTTP statuses are mapped in one
place: :mod:`bgp_orchestrator.api.errors`.
"""

from __future__ import annotations

from typing import Any


class BgpoError(Exception):
    """Root of the project's errors.

    ``code`` is a stable, machine-readable slug (``peer-address-in-use``);
    ``message`` is for humans and says what to do; ``field`` and ``value``
    name the offending input when there is one; ``details`` carries anything
    structured a client may act on.
    """

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        value: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code, message, field, value, details)
        self.code = code
        self.message = message
        self.field = field
        self.value = value
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.value is not None:
            out["value"] = (
                self.value if isinstance(self.value, int | float | bool) else str(self.value)
            )
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(BgpoError):
    """A value a client sent is not acceptable (bad ASN, host bits set, ...)."""


class NotFound(BgpoError):
    """The named object does not exist for this tenant."""


class ConfigConflict(BgpoError):
    """Writing the configuration would contradict configuration already stored."""


class Unauthorized(BgpoError):
    """The request does not say who it is for (no or unknown tenant)."""


class Forbidden(BgpoError):
    """The caller is known but its role does not allow this action."""


class RateLimited(BgpoError):
    """The caller sent more requests than its limits allow; ``details.retry_after_s``."""


class ServiceUnavailable(BgpoError):
    """A dependency (PostgreSQL, Redis, Kafka) does not answer; retry later."""


class ConfigurationError(BgpoError):
    """Operator configuration (settings, serve config, files) is invalid."""
