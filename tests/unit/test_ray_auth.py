import stat
from pathlib import Path

import pytest

from bgp_orchestrator.stack import ray_auth


def test_token_sources_in_ray_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert ray_auth.token() is None and ray_auth.headers() == {}
    created = ray_auth.ensure_token()
    assert len(created) == 64
    assert stat.S_IMODE((tmp_path / "tok").stat().st_mode) == 0o600
    assert ray_auth.ensure_token() == created  # kept, not regenerated
    assert ray_auth.headers() == {"Authorization": f"Bearer {created}"}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "direct")
    assert ray_auth.token() == "direct"
