from pathlib import Path

from bgp_orchestrator.local.services import embedded_services, endpoints, redact
from bgp_orchestrator.settings import Settings


def test_everything_embedded_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedded_postgres_port=5999, metric_store="parquet")
    assert [s.name for s in embedded_services(settings)] == ["postgres", "redis", "kafka"]
    assert endpoints(settings).database_url == "postgresql://postgres@127.0.0.1:5999/bgpo"


def test_configured_servers_start_nothing(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://bgpo:pw@db.internal:5432/bgpo",
        redis_url="redis://cache.internal:6379/2",
        kafka_bootstrap_servers="k1:9092,k2:9092",
        victoria_metrics_url="http://vm.internal:8428",
    )
    assert embedded_services(settings) == []
    ep = endpoints(settings)
    assert ep.as_env() == {
        "BGPO_DATABASE_URL": "postgresql://bgpo:pw@db.internal:5432/bgpo",
        "BGPO_REDIS_URL": "redis://cache.internal:6379/2",
        "BGPO_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "BGPO_VICTORIA_METRICS_URL": "http://vm.internal:8428",
    }


def test_partly_configured(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql://u@db/x", metric_store="parquet"
    )
    assert [s.name for s in embedded_services(settings)] == ["redis", "kafka"]


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://bgpo:s3cret@db:5432/x") == "postgresql://bgpo:***@db:5432/x"
    assert redact("redis://cache:6379/0") == "redis://cache:6379/0"
