from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bgp_orchestrator.cli.main import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "migrate", "serve-config"):
        assert command in result.output


def test_serve_config_prints_valid_yaml() -> None:
    result = runner.invoke(app, ["serve-config"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["applications"][0]["import_path"] == "deployments.api:app"


def test_serve_config_local_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPO_DATABASE_URL", "postgresql://bgpo:s3cr3t-value@db:5432/bgpo")
    result = runner.invoke(app, ["serve-config", "--local"])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-value" not in result.output
    env = yaml.safe_load(result.stdout)["applications"][0]["runtime_env"]["env_vars"]
    assert env["BGPO_DATABASE_URL"] == "postgresql://bgpo:***@db:5432/bgpo"


def test_invalid_serve_config_file_exits_1_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("applications: [{name: a, import_path: 42}]\n")
    result = runner.invoke(app, ["serve-config", "--file", str(path)])
    assert result.exit_code == 1
    assert "serve-config-invalid" in result.output
    assert "import_path" in result.output


def test_invalid_setting_exits_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPO_API_PORT", "99999")
    result = runner.invoke(app, ["serve-config", "--local"])
    assert result.exit_code == 2
    assert "BGPO_API_PORT" in result.output


def test_migrate_against_an_unreachable_database_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("BGPO_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 1
    assert "cannot reach PostgreSQL" in result.output
    assert "BGPO_DATABASE_URL" in result.output
