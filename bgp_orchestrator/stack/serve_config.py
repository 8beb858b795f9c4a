"""Load, adapt and validate the single Serve config (``deployments/serve_config.yaml``)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.settings import Ingress, Settings

# Environment of the Ray processes for each ingress choice (see bench/api_latency.py).
# HAProxy in front of direct-ingress replicas; the throughput-optimised mode
# runs user code on the replica's own loop and talks gRPC between Serve actors.
INGRESS_ENV: dict[Ingress, dict[str, str]] = {
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "proxy": {},
}


def base_config_text() -> str:
    return resources.files("deployments").joinpath("serve_config.yaml").read_text()


def load(path: Path | None = None) -> dict[str, Any]:
    """The Serve config from ``path``, or the project's own."""
    try:
        text = path.read_text() if path is not None else base_config_text()
    except OSError as exc:
        raise ConfigurationError(
            "serve-config-unreadable", f"cannot read {path}: {exc.strerror}", "file", str(path)
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            "serve-config-invalid", f"{path or 'serve_config.yaml'} is not valid YAML: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            "serve-config-invalid", "the Serve config must be a YAML mapping with 'applications'"
        )
    return data


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` with Ray's own schema; errors name the failing path."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(
            "serve-config-invalid", f"the Serve config is not valid: {problems}"
        ) from None
    apps = config.get("applications") or []
    names = [a.get("name") for a in apps]
    if len(set(names)) != len(names):
        raise ConfigurationError("serve-config-invalid", f"duplicate application names: {names}")
    return config


def for_local(config: dict[str, Any], settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    """The config as `bgpo up` deploys it: local ports and each app's environment."""
    local = copy.deepcopy(config)
    http = local.setdefault("http_options", {})
    http["host"] = settings.api_host
    http["port"] = settings.api_port
    app_env = {**configured_env(settings), "BGPO_DATA_DIR": str(settings.data_dir), **env}
    for app in local.get("applications", []):
        runtime_env = app.setdefault("runtime_env", {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **app_env}
    return validate(local)


def configured_env(settings: Settings) -> dict[str, str]:
    """BGPO_* variables for every setting the operator set (environment or .env file),
    so the Serve applications run with the configuration `bgpo up` ran with."""
    out: dict[str, str] = {
        "BGPO_ENVIRONMENT": settings.environment,
        "BGPO_LOG_LEVEL": settings.log_level,
    }
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, list | tuple | set | dict):
            # Complex settings are read back as JSON (e.g. networks, algorithms).
            plain = settings.model_dump(mode="json", include={name})[name]
            out[f"BGPO_{name.upper()}"] = json.dumps(plain)
            continue
        out[f"BGPO_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def embed_in_rayservice(manifest: Path) -> bool:
    """Rewrite the ``serveConfigV2`` block of a RayService manifest with the project's
    serve config, keeping everything else (comments included); True if it changed."""
    text = manifest.read_text()
    marker = "  serveConfigV2: |\n"
    start = text.find(marker)
    if start < 0:
        raise ConfigurationError(
            "not-a-rayservice",
            f"{manifest} has no 'serveConfigV2: |' block",
            "file",
            str(manifest),
        )
    start += len(marker)
    end = start
    lines = text[start:].splitlines(keepends=True)
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break
        end += len(line)
    block = "".join(
        ("      " + line if line.strip() else "\n")
        for line in base_config_text().splitlines(keepends=True)
    )
    updated = text[:start] + block + text[end:]
    if updated == text:
        return False
    manifest.write_text(updated)
    return True


def app_names(config: dict[str, Any]) -> list[str]:
    return [str(a["name"]) for a in config.get("applications", [])]


def dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
