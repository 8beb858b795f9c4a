"""Bits shared by the resource routers."""

from __future__ import annotations

from typing import Any

from fastapi import Path

# Object ids are PostgreSQL bigints.
ObjectId: Any = Path(ge=1, le=9_223_372_036_854_775_807, description="Object id")


def like_pattern(text: str) -> str:
    """A case-insensitive 'contains' pattern with LIKE wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
