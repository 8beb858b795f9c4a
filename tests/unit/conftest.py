"""Unit tests never start Ray or a server: this fixture fails any test that calls ray.init."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import ray

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", forbidden)
    yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings tests see only the variables they set."""
    import os

    for key in list(os.environ):
        if key.startswith("BGPO_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(os.path.dirname(__file__))
