from pathlib import Path

import pytest
from pydantic import ValidationError

from bgp_orchestrator.settings import Settings


def test_defaults_are_development_with_embedded_services() -> None:
    s = Settings()
    assert s.environment == "development"
    assert s.database_url is None and s.redis_url is None and s.kafka_bootstrap_servers is None
    # Ray's default GCS port is Redis' 6379; the head must use another one.
    assert s.ray_port != 6379
    assert s.serve_ingress == "haproxy"


def test_reads_the_bgpo_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BGPO_API_PORT", "8123")
    monkeypatch.setenv("BGPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BGPO_DATABASE_URL", "postgresql://u:p@db.example:5432/bgpo")
    s = Settings()
    assert s.api_port == 8123
    assert s.data_dir == tmp_path
    assert s.database_url is not None
    assert "p@" not in repr(s)  # secrets are not printed


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("BGPO_API_PORT", "70000", "BGPO_API_PORT"),
        ("BGPO_RAY_PORT", "0", "BGPO_RAY_PORT"),
        ("BGPO_DATABASE_URL", "mysql://x/y", "postgresql://"),
        ("BGPO_REDIS_URL", "http://x", "redis://"),
        ("BGPO_KAFKA_BOOTSTRAP_SERVERS", "broker-without-port", "host:port"),
        ("BGPO_ENVIRONMENT", "staging", "development"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_production_refuses_embedded_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPO_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="BGPO_DATABASE_URL"):
        Settings()


def test_production_refuses_placeholder_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPO_ENVIRONMENT", "production")
    monkeypatch.setenv("BGPO_DATABASE_URL", "postgresql://bgpo:postgres@db:5432/bgpo")
    monkeypatch.setenv("BGPO_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("BGPO_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("BGPO_VICTORIA_METRICS_URL", "http://vm:8428")
    with pytest.raises(ValidationError, match="placeholder password"):
        Settings()
    monkeypatch.setenv("BGPO_DATABASE_URL", "postgresql://bgpo:Xk3-long-real-secret@db:5432/bgpo")
    with pytest.raises(ValidationError, match="BGPO_OIDC_ISSUER, BGPO_API_KEY_SECRET"):
        Settings()
    monkeypatch.setenv("BGPO_OIDC_ISSUER", "https://sso.example.net/realms/bgpo")
    monkeypatch.setenv("BGPO_API_KEY_SECRET", "short")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings()
    monkeypatch.setenv("BGPO_API_KEY_SECRET", "k" * 20 + "-a-real-random-secret")
    assert Settings().environment == "production"


def test_production_needs_a_metric_store_every_node_reaches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BGPO_ENVIRONMENT", "production")
    monkeypatch.setenv("BGPO_DATABASE_URL", "postgresql://bgpo:Xk3-long-real-secret@db:5432/bgpo")
    monkeypatch.setenv("BGPO_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("BGPO_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092")
    monkeypatch.setenv("BGPO_OIDC_ISSUER", "https://sso.example.net/realms/bgpo")
    monkeypatch.setenv("BGPO_API_KEY_SECRET", "k" * 20 + "-a-real-random-secret")
    with pytest.raises(ValidationError, match="BGPO_VICTORIA_METRICS_URL"):
        Settings()
    monkeypatch.setenv("BGPO_METRIC_STORE", "parquet")  # a deliberate choice (shared volume)
    assert Settings().metric_store == "parquet"
    monkeypatch.setenv("BGPO_METRIC_STORE", "auto")
    monkeypatch.setenv("BGPO_VICTORIA_METRICS_URL", "http://vm:8428")
    assert Settings().victoria_metrics_url == "http://vm:8428"


def test_derived_paths_are_short_and_stable(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / ("deep" * 30))
    # Ray's and HAProxy's Unix sockets live below these; their paths are length-limited.
    assert len(str(s.ray_session_dir)) < 40
    assert len(str(s.haproxy_dir)) < 30
    assert s.ray_session_dir == Settings(data_dir=tmp_path / ("deep" * 30)).ray_session_dir
    assert s.ray_session_dir != Settings(data_dir=tmp_path / "other").ray_session_dir
    assert Settings(api_host="0.0.0.0", api_port=9000).api_url == "http://127.0.0.1:9000"
