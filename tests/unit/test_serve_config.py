from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack import serve_config

REPO = Path(__file__).resolve().parents[2]


def _manifest(name: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "cluster" / name).read_text())
    assert isinstance(data, dict)
    return data


def test_project_config_is_valid_for_ray() -> None:
    config = serve_config.validate(serve_config.load())
    assert serve_config.app_names(config) == [
        "peering-api",
        "portal",
        "detector",
        "alerts",
        "scheduler",
        "predictor",
        "session-stats",
    ]


def test_local_config_carries_ports_and_environment(tmp_path: Path) -> None:
    settings = Settings(api_port=8123, api_host="127.0.0.1", data_dir=tmp_path)
    local = serve_config.for_local(
        serve_config.load(), settings, {"BGPO_DATABASE_URL": "postgresql://x@h/db"}
    )
    assert local["http_options"]["port"] == 8123
    env = local["applications"][0]["runtime_env"]["env_vars"]
    assert env["BGPO_DATABASE_URL"] == "postgresql://x@h/db"
    assert env["BGPO_DATA_DIR"] == str(tmp_path)
    # The project's file is not modified by the overlay.
    assert "runtime_env" not in serve_config.load()["applications"][0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("applications: [{name: a, import_path: 42}]", "import_path"),
        ("proxy_location: Nowhere\napplications: []\n", "proxy_location"),
        ("[1, 2]", "mapping"),
        ("applications: [{name: a, import_path: 'x:y'", "not valid YAML"),
    ],
)
def test_invalid_files_say_what_is_wrong(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        serve_config.validate(serve_config.load(path))
    assert needle in info.value.message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        serve_config.load(tmp_path / "absent.yaml")


def test_rayservice_embeds_the_single_serve_config() -> None:
    service = _manifest("rayservice.yaml")
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert embedded == serve_config.load()


def test_manifests_match_the_ray_version() -> None:
    for name, path in (
        ("rayservice.yaml", ("rayClusterConfig",)),
        ("rayjob-migrate.yaml", ("rayClusterSpec",)),
    ):
        spec = _manifest(name)["spec"]
        for key in path:
            spec = spec[key]
        assert spec["rayVersion"] == ray.__version__
    assert (
        f"rayproject/ray:{ray.__version__}-py311" in (REPO / "cluster" / "Dockerfile").read_text()
    )


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest["spec"]
    cluster = spec.get("rayClusterConfig") or spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.mark.parametrize("name", ["rayservice.yaml", "rayjob-migrate.yaml"])
def test_every_container_has_requests_and_limits(name: str) -> None:
    for container in _containers(_manifest(name)):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert {"cpu", "memory"} <= set(resources["limits"]), container["name"]


def test_kuberay_uses_the_ingress_that_up_uses() -> None:
    chosen = serve_config.INGRESS_ENV[Settings().serve_ingress]
    for container in _containers(_manifest("rayservice.yaml")):
        env = {e["name"]: e.get("value") for e in container["env"]}
        for key, value in chosen.items():
            assert env.get(key) == value, (container["name"], key)


def test_rayjob_lifecycle_is_explicit() -> None:
    spec = _manifest("rayjob-migrate.yaml")["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    module = spec["entrypoint"].split()[-1]
    assert (REPO / (module.replace(".", "/") + ".py")).exists()


def test_embedding_into_a_manifest_keeps_the_rest(tmp_path: Path) -> None:
    copy = tmp_path / "rayservice.yaml"
    original = (REPO / "cluster" / "rayservice.yaml").read_text()
    copy.write_text(original.replace("max_ongoing_requests: 256", "max_ongoing_requests: 1"))
    assert serve_config.embed_in_rayservice(copy) is True
    assert copy.read_text() == original
    assert serve_config.embed_in_rayservice(copy) is False


@pytest.mark.parametrize(
    ("name", "path"),
    [("rayservice.yaml", "rayClusterConfig"), ("rayjob-migrate.yaml", "rayClusterSpec")],
)
def test_manifests_require_ray_token_authentication(name: str, path: str) -> None:
    assert _manifest(name)["spec"][path]["authOptions"] == {"mode": "token"}


#: Settings whose values are credentials: they must come from a Kubernetes Secret.
SECRET_SETTINGS = {
    "BGPO_DATABASE_URL",
    "BGPO_REDIS_URL",
    "BGPO_KAFKA_BOOTSTRAP_SERVERS",
    "BGPO_VICTORIA_METRICS_URL",
    "BGPO_WEBHOOK_SECRET_KEYS",
}


@pytest.mark.parametrize("name", ["rayservice.yaml", "rayjob-migrate.yaml"])
def test_credentials_reach_the_pods_from_secrets_only(name: str) -> None:
    manifest = _manifest(name)
    for container in _containers(manifest):
        env = {e["name"]: e for e in container["env"]}
        for setting in SECRET_SETTINGS & set(env):
            assert "value" not in env[setting], (container["name"], setting)
            assert env[setting]["valueFrom"]["secretKeyRef"]["name"], setting
        assert {"BGPO_DATABASE_URL", "BGPO_REDIS_URL"} <= set(env), container["name"]
    if name == "rayservice.yaml":
        for container in _containers(manifest):
            assert "BGPO_WEBHOOK_SECRET_KEYS" in {e["name"] for e in container["env"]}
        # ... and none travels in the Serve config (anyone who can read the RayService
        # or query the Serve REST API sees its runtime_env).
        embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
        for app in embedded["applications"]:
            assert "runtime_env" not in app or not (
                set(app["runtime_env"].get("env_vars", {})) & SECRET_SETTINGS
            ), app["name"]
        assert "password" not in manifest["spec"]["serveConfigV2"].lower()


def test_list_settings_reach_the_replicas_in_a_form_they_read_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        webhook_allowed_networks=["10.20.0.0/16", "127.0.0.0/8"],
        trusted_proxies=["10.0.0.0/8"],
        oidc_algorithms=["RS256"],
    )
    env = serve_config.configured_env(settings)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = Settings()
    assert again.webhook_allowed_networks == settings.webhook_allowed_networks
    assert again.trusted_proxies == settings.trusted_proxies
    assert again.oidc_algorithms == ["RS256"]
