"""Deploy and watch Serve applications through the Ray dashboard's REST API
(what `serve deploy` and `serve status` use)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from bgp_orchestrator.errors import ConfigurationError, ServiceUnavailable
from bgp_orchestrator.stack import ray_auth


class ServeClient:
    def __init__(self, dashboard_url: str, timeout_s: float = 30.0) -> None:
        self.base = dashboard_url.rstrip("/")
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return httpx.request(
                method,
                self.base + path,
                timeout=self.timeout_s,
                headers=ray_auth.headers(),
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "ray-dashboard-unreachable",
                f"the Ray dashboard at {self.base} does not answer ({exc}); is the Ray head up?",
            ) from exc

    def deploy(self, config: dict[str, Any]) -> None:
        response = self._request("PUT", "/api/serve/applications/", json=config)
        if response.status_code in (401, 403):
            raise ConfigurationError(
                "ray-auth-failed",
                f"the Ray dashboard refused our token (HTTP {response.status_code}); put the "
                "cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token",
            )
        if response.status_code != 200:
            raise ConfigurationError(
                "serve-deploy-failed",
                f"Serve refused the config (HTTP {response.status_code}): {response.text[:2000]}",
            )

    def applications(self) -> dict[str, Any]:
        response = self._request("GET", "/api/serve/applications/")
        if response.status_code != 200:
            raise ServiceUnavailable(
                "serve-status-failed", f"Serve status failed (HTTP {response.status_code})"
            )
        apps: dict[str, Any] = response.json().get("applications") or {}
        return apps

    def wait_running(self, names: list[str], timeout_s: float = 180.0) -> dict[str, Any]:
        """Wait until every named application is RUNNING; fail fast on DEPLOY_FAILED."""
        deadline = time.monotonic() + timeout_s
        apps: dict[str, Any] = {}
        while time.monotonic() < deadline:
            apps = self.applications()
            for name in names:
                app = apps.get(name) or {}
                if app.get("status") == "DEPLOY_FAILED":
                    raise ConfigurationError(
                        "serve-deploy-failed",
                        f"application {name!r} failed to deploy: {app.get('message', '')[:3000]}",
                    )
            if all((apps.get(n) or {}).get("status") == "RUNNING" for n in names):
                return apps
            time.sleep(1.0)
        states = {n: (apps.get(n) or {}).get("status", "MISSING") for n in names}
        raise ServiceUnavailable(
            "serve-deploy-timeout",
            f"Serve applications not running after {timeout_s:.0f}s: {states}; "
            "see `bgpo status` and the Ray dashboard's Serve page",
        )

    def shutdown(self) -> None:
        self._request("DELETE", "/api/serve/applications/")
