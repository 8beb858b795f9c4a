"""Shared test helpers: the real BGP data folder and free TCP ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bgp_orchestrator.local.ports import free_port

REPO = Path(__file__).resolve().parents[1]
# ../shared/data/bgp beside the checkout, or where BGPO_TEST_BGP_DATA points.
SHARED_DATA = Path(os.environ.get("BGPO_TEST_BGP_DATA") or REPO.parent / "shared" / "data" / "bgp")


@pytest.fixture(scope="session")
def bgp_data() -> Path:
    """../shared/data/bgp, or a clean skip where the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real BGP data not found at {SHARED_DATA}")
    return SHARED_DATA


__all__ = ["SHARED_DATA", "free_port"]
