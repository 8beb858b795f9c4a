"""Shared test helpers: the real BGP data folder and free TCP ports."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "bgp"

# pgserver warns about XDG_RUNTIME_DIR at import; irrelevant to the tests.
warnings.filterwarnings("ignore", module="platformdirs")


@pytest.fixture(scope="session")
def bgp_data() -> Path:
    """../shared/data/bgp, or a clean skip where the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real BGP data not found at {SHARED_DATA}")
    return SHARED_DATA


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
