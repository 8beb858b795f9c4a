"""Keeps credentials out of logs: tokens, API keys, passwords and secrets are replaced
with ``[REDACTED]`` in every log record of the process.

:func:`install` wraps the logging record factory, so a record is cleaned when it is
made, whichever logger, handler or formatter (Ray's included) writes it later; the
message, its arguments and a traceback's text are covered. :class:`RedactingFilter`
does the same as a filter, for handlers configured elsewhere.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

MASK = "[REDACTED]"

_VALUE = r"[^\s\"',;&}\]]+"
_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Authorization: Bearer xyz / 'authorization': 'Basic xyz' / X-API-Key: xyz
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization|x-api-key)([\"']?\s*[:=]\s*[\"']?)"
            r"(?:(bearer|basic|token|apikey)\s+)?" + _VALUE
        ),
        lambda m: f"{m[1]}{m[2]}{m[3] + ' ' if m[3] else ''}{MASK}",
    ),
    # password=..., "client_secret": "...", token: ... (JSON, query strings, reprs)
    (
        re.compile(
            r"(?i)\b([a-z_]*(?:password|passwd|secret|token|api_?key)[a-z_]*)"
            r"([\"']?\s*[:=]\s*[\"']?)" + _VALUE
        ),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"), f"Bearer {MASK}"),
    # JWTs, the project's API keys, Standard Webhooks secrets
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"\bbgpo_[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"), MASK),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), rf"\1{MASK}@"),
)


def redact(text: str) -> str:
    """``text`` with every credential-looking value masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error report
        return record
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(text)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed: list[Any] = []


def install() -> None:
    """Clean every record this process makes from now on (idempotent)."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed.append(previous)


def uninstall() -> None:
    """Restore the record factory :func:`install` replaced (tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
