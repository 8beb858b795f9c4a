"""The whole stack through `bgpo up`: the API through Ray Serve, a PostgreSQL outage, `down`.

Everything runs on embedded defaults in a temporary data directory, on free
ports, so it neither needs nor disturbs services already on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import psutil
import pytest

from bgp_orchestrator.api.ml_schemas import PredictionsOut
from bgp_orchestrator.local import oidc
from bgp_orchestrator.local.oidc import DEMO_USERS
from bgp_orchestrator.local.ports import free_ports_env
from bgp_orchestrator.settings import Settings
from bgp_orchestrator.stack import ray_auth

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
E2E = {"X-Tenant": "e2e"}
#: The tenant asking for flap predictions: it peers with the simulated sessions it asks about.
FLAPS = {"X-Tenant": "flaps"}
PLATFORM = {"X-Role": "platform-admin"}


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BGPO_")}
        self.env["BGPO_DATA_DIR"] = str(data_dir)
        self.env["RAY_AUTH_MODE"] = "token"  # so that the `ray` CLI sends the stack's token
        self.env["COLUMNS"] = "250"  # rich tables on one line each, as on a wide terminal
        ports = free_ports_env()
        self.env.update(ports)
        self.settings = Settings(
            data_dir=data_dir,
            **{name.removeprefix("BGPO_").lower(): int(v) for name, v in ports.items()},
        )
        self.url = self.settings.api_url
        self.up_output = ""

    def bgpo(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bgp_orchestrator.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def markers(self) -> list[str]:
        s = self.settings
        return [str(s.data_dir), str(s.ray_session_dir), str(s.haproxy_dir)]

    def leftovers(self, sid: int | None) -> list[str]:
        found = []
        for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
            try:
                if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                    continue
                cmdline = " ".join(proc.info["cmdline"] or [])
                same_session = sid is not None and os.getsid(proc.pid) == sid
                if same_session or any(m in cmdline for m in self.markers()):
                    found.append(f"{proc.pid} {proc.info['name']} {cmdline[:120]}")
            except (psutil.Error, ProcessLookupError):
                continue
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("stack"))
    started = time.monotonic()
    result = stack.bgpo("up")
    elapsed = time.monotonic() - started
    stack.up_output = result.stdout
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert elapsed < 120, f"bgpo up took {elapsed:.0f}s"
        yield stack
    finally:
        stack.bgpo("down")


def _tenant(client: httpx.Client, slug: str) -> dict[str, str]:
    r = client.post(
        "/api/v1/tenants", json={"slug": slug, "name": slug}, headers={"X-Role": "platform-admin"}
    )
    assert r.status_code == 201, r.text
    headers = {"X-Tenant": slug}
    assert client.post("/api/v1/asns", json={"asn": 64500}, headers=headers).status_code == 201
    return headers


def submit(stack: Stack, *job: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """`ray job submit` of ``python -m <job>`` to the stack's Ray head; must succeed."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ray"),
            "job",
            "submit",
            "--address",
            stack.settings.dashboard_url,
            "--",
            "python",
            "-m",
            *job,
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_up_prints_working_urls(stack: Stack) -> None:
    result = stack.bgpo("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for component in (
        "postgres", "redis", "kafka", "schema", "ray head", "peering-api", "scheduler",
        "detectors (bgpo-detectors)", "session stats",
    ):  # fmt: skip
        assert component in result.stdout
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{stack.url}/docs").status_code == 200
        assert client.get(f"{stack.url}/readyz").status_code == 200
        assert client.get(stack.settings.dashboard_url).status_code == 200
        # The portal, under its own route prefix of the same ingress.
        assert client.get(f"{stack.url}/portal/healthz").status_code == 200
        signed_out = client.get(f"{stack.url}/portal/")
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].endswith("/portal/login")


def test_portal_sign_in_with_the_demo_login_up_prints(stack: Stack) -> None:
    """The whole authorization-code flow against the embedded provider `up` started, as a
    browser makes it (cookies kept, each redirect taken by hand), through the Serve ingress."""
    printed = " ".join(stack.up_output.split())  # rich wraps long lines
    assert f"Portal: {stack.url}/portal" in printed
    assert f"demo login: {DEMO_USERS[0].sub}" in printed
    portal = f"{stack.url}/portal"
    with httpx.Client(timeout=30) as browser:
        start = browser.get(f"{portal}/")  # signed out: on to the sign-in page
        assert start.status_code == 303, start.text
        login = browser.get(urljoin(str(start.url), start.headers["location"]))
        assert login.status_code == 302, login.text
        authorize = login.headers["location"]
        assert authorize.startswith(oidc.embedded_issuer(stack.settings))
        picked = browser.post(authorize, data={"sub": DEMO_USERS[0].sub})
        assert picked.status_code == 302, picked.text
        callback = browser.get(picked.headers["location"])
        assert callback.status_code == 303, callback.text
        back = urljoin(f"{portal}/", callback.headers["location"])
        assert back == f"{portal}/"  # back where the user started
        dashboard = browser.get(back)
        assert dashboard.status_code == 200
        assert DEMO_USERS[0].name in dashboard.text


def test_api_through_serve(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        h = _tenant(client, "e2e")
        session = {
            "local_asn": 64500,
            "peer_asn": "AS65010",
            "peer_address": "192.0.2.10",
            "interconnect": "ixp",
        }
        r = client.post("/api/v1/sessions", json=session, headers=h)
        assert r.status_code == 201, r.text
        r = client.post("/api/v1/sessions", json={**session, "peer_asn": 0}, headers=h)
        assert r.status_code == 422 and r.json()["field"] == "peer_asn"
        r = client.post("/api/v1/sessions", json={**session, "peer_asn": 65011}, headers=h)
        assert r.status_code == 409 and r.json()["code"] == "peer-address-in-use"
        listing = client.get("/api/v1/sessions", headers=h).json()
        assert listing["total"] == 1 and listing["items"][0]["peer_asn"] == 65010
        assert "bgpo_http_requests_total" in client.get("/metrics").text


class Hammer(threading.Thread):
    """Asks for predictions in a loop, of one session (batched by Serve) and of two
    (one call, sent on encoded), and records every answer's model version."""

    def __init__(self, url: str, session: str, other: str) -> None:
        super().__init__(daemon=True)
        self.url, self.session, self.other = url, session, other
        self.versions: list[int] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            pairs = [[self.session], [self.other, self.session]]
            while not self.stop.is_set():
                sessions = pairs[len(self.versions) % 2]
                r = client.post("/api/v1/ml/predict", json={"sessions": sessions}, headers=FLAPS)
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    answers = PredictionsOut.model_validate_json(r.content).predictions
                    versions = {a.model_version for a in answers}
                    if [a.session_id for a in answers] != sessions or len(versions) != 1:
                        self.failures.append(f"unexpected answers {answers}")
                    else:
                        self.versions.append(answers[0].model_version or 0)
                time.sleep(0.02)

    def wait_for(self, version: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.versions or self.versions[-1] != version:
            assert time.monotonic() < deadline, f"still serving {self.versions[-1:]} not {version}"
            time.sleep(0.2)


def test_training_job_and_model_switches_fail_no_request(stack: Stack) -> None:
    """`ray job submit` trains on the cluster `up` started; the predictor switches to the
    new model (registry activation), then to a pinned one (reconfigure), failing nothing."""
    from bgp_orchestrator.stack import serve_config
    from bgp_orchestrator.stack.lifecycle import apps_env
    from bgp_orchestrator.stack.serve_client import ServeClient

    with httpx.Client(base_url=stack.url, timeout=10) as client:
        # A tenant reads the predictions of its own sessions: this one peers with the
        # two simulated sessions asked about (its own tenant: e2e counts its sessions).
        r = client.post(
            "/api/v1/tenants", json={"slug": "flaps", "name": "Flaps"}, headers=PLATFORM
        )
        assert r.status_code == 201, r.text
        r = client.post("/api/v1/asns", json={"asn": 64800}, headers=FLAPS)
        assert r.status_code == 201, r.text
        for i, address in enumerate(("10.0.0.5", "10.0.0.6")):
            r = client.post(
                "/api/v1/sessions",
                json={
                    "local_asn": 64800,
                    "peer_asn": 65020 + i,
                    "peer_address": address,
                    "interconnect": "pni",
                },
                headers=FLAPS,
            )
            assert r.status_code == 201, r.text
        r = client.post("/api/v1/ml/predict", json={"sessions": ["sim|10.0.0.5"]}, headers=FLAPS)
        assert r.status_code == 200, r.text
        starter = r.json()["predictions"][0]["model_version"]
        r = client.post(
            "/api/v1/features/serve", json={"sessions": ["sim|10.0.0.5"]}, headers=FLAPS
        )
        assert r.status_code == 200, r.text
        assert r.json()["sessions"][0]["found"] is True

    hammer = Hammer(stack.url, "sim|10.0.0.5", "sim|10.0.0.6")
    hammer.start()
    try:
        for job in (
            ["jobs.build_flap_dataset", "simulate", "--sessions", "3000", "--windows", "48"],
            ["jobs.train_flap_model", "--workers", "2", "--cpus-per-worker", "0.5", "--activate"],
        ):
            result = submit(stack, *job)
        assert "model v" in result.stdout and "active" in result.stdout
        trained = starter + 1
        hammer.wait_for(trained, timeout=60)

        # Pin the starter model through the Serve config: reconfigure(), no restart.
        settings = stack.settings
        # The environment `up` deployed with (the issuer too): only user_config changes.
        config = serve_config.for_local(
            serve_config.validate(serve_config.load()), settings, apps_env(settings)
        )
        for app in config["applications"]:
            if app["name"] == "predictor":
                app["deployments"][0]["user_config"] = {"model_version": starter}
        ServeClient(settings.dashboard_url).deploy(config)
        hammer.wait_for(starter, timeout=60)
        time.sleep(1)
    finally:
        hammer.stop.set()
        hammer.join(15)
    assert hammer.failures == []
    assert len(hammer.versions) > 50
    assert trained in hammer.versions and hammer.versions[-1] == starter
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        models = client.get("/api/v1/ml/models", headers=E2E).json()
        assert models["items"][0]["version"] == trained and models["items"][0]["active"]
        # Materialization on demand: a Ray job that succeeds.
        r = client.post("/api/v1/features/materialize", headers={"X-Role": "platform-admin"})
        assert r.status_code == 202, r.text
        job = r.json()["job_id"]
        deadline = time.monotonic() + 120
        while True:
            status = client.get(
                f"{stack.settings.dashboard_url}/api/jobs/{job}", headers=ray_auth.headers()
            ).json()["status"]
            if status == "SUCCEEDED":
                break
            assert status in ("PENDING", "RUNNING") and time.monotonic() < deadline, status
            time.sleep(2)


def test_anomaly_fitting_job_stores_what_the_api_returns(stack: Stack) -> None:
    """`ray job submit jobs.fit_anomalies --tune` on the cluster `up` started tunes its
    parameters with Ray Tune, reads the series from the stack's metric store, and the
    API returns the anomalies it stored."""
    import asyncio

    from bgp_orchestrator.anomaly.store import open_metric_store
    from bgp_orchestrator.anomaly.synthetic import generate

    data = generate(40, days=7, anomalies_per_series=2, seed=9)
    frame = data.long_frame("bgpo_session_withdrawal_rate")

    async def load() -> str:
        from bgp_orchestrator.anomaly.series import MetricPoint

        store = open_metric_store(stack.settings)
        try:
            await store.write(
                [
                    MetricPoint(
                        r.metric, r.session, int(r.peer_asn), r.timestamp.timestamp(), r.value
                    )
                    for r in frame.itertuples()
                ]
            )
            flush = getattr(store, "flush", None)
            if flush is not None:
                await flush()
            return store.describe()
        finally:
            await store.close()

    where = asyncio.run(load())
    assert "VictoriaMetrics" in where or "Parquet" in where
    end = data.index[-1] + (data.index[1] - data.index[0])
    result = submit(
        stack, "jobs.fit_anomalies", "--end", end.isoformat(), "--days", "7",
        "--metrics", "bgpo_session_withdrawal_rate", "--workers", "1",
        "--tune", "--tune-samples", "2", "--tune-series", "30",
    )  # fmt: skip
    outcome = json.loads(
        next(x for x in reversed(result.stdout.splitlines()) if x.startswith('{"run_id"'))
    )
    assert outcome["fitted"] == 40 and outcome["anomalies"] > 0
    # --tune: Ray Tune chose the parameters the run used, by F1 on labelled series.
    tuned = outcome["params"]["tuned"]
    assert 0 < tuned["f1"] <= 1
    assert outcome["params"]["season_length"] == 24  # 168 does not fit 7 days twice
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        r = client.post(
            "/api/v1/tenants",
            json={"slug": "noc", "name": "NOC"},
            headers={"X-Role": "platform-admin"},
        )
        assert r.status_code == 201, r.text
        noc = {"X-Tenant": "noc"}
        # A tenant reads the anomalies of its own sessions: noc peers with every
        # synthetic session (peer ASN and address).
        r = client.post("/api/v1/asns", json={"asn": 64700}, headers=noc)  # e2e has 64500
        assert r.status_code == 201, r.text
        for name, peer_asn in zip(data.sessions, data.peer_asns, strict=True):
            address = name.split("|", 1)[1]
            r = client.post(
                "/api/v1/sessions",
                json={
                    "local_asn": 64700,
                    "peer_asn": int(peer_asn),
                    "peer_address": address,
                    "interconnect": "pni",
                    "max_prefixes": 500,
                },
                headers=noc,
            )
            assert r.status_code == 201, r.text
        listed = client.get(
            "/api/v1/anomalies", params={"metric": "bgpo_session_withdrawal_rate"}, headers=noc
        ).json()
        # the bands' anomalies under their metric, the trailing detector's under its own
        assert listed["total"] == outcome["anomalies"] - outcome["trailing_anomalies"]
        trailing = client.get(
            "/api/v1/anomalies", params={"metric": "bgpo_session_features"}, headers=noc
        ).json()
        assert trailing["total"] == outcome["trailing_anomalies"]
        assert all(i["engine"] == "trailing" for i in trailing["items"])
        first = listed["items"][0]
        assert first["session"] in data.sessions and first["run_id"] == outcome["run_id"]
        detail = client.get(f"/api/v1/anomalies/{first['id']}", headers=noc).json()
        assert detail["window"]
        summary = client.get("/api/v1/anomalies/summary", headers=noc).json()
        assert summary["last_run"]["id"] == outcome["run_id"]
        assert summary["last_run"]["status"] == "succeeded"


def test_postgres_outage_gives_503_and_recovers(stack: Stack) -> None:
    pgdata = stack.settings.data_dir / "postgres"
    pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    with httpx.Client(base_url=stack.url, timeout=15) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 503:
            assert time.monotonic() < deadline, "/readyz still 200 after PostgreSQL was killed"
            time.sleep(0.2)
        for path in ("/api/v1/sessions", "/api/v1/asns"):
            started = time.monotonic()
            r = client.get(path, headers={"X-Tenant": "e2e"})
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "database-unavailable"
            assert time.monotonic() - started < 5, "the API hung instead of answering 503"

        # `bgpo up` again restarts only what is missing; Ray and Serve keep running.
        result = stack.bgpo("up")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "starting the local Ray head" not in result.stdout
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "API did not recover after PostgreSQL restarted"
            time.sleep(0.5)
        r = client.get("/api/v1/sessions", headers={"X-Tenant": "e2e"})
        assert r.status_code == 200 and r.json()["total"] == 1


def test_down_leaves_no_process_behind(stack: Stack) -> None:
    state = json.loads((stack.settings.run_dir / "ray-head.json").read_text())
    assert stack.leftovers(None), "the stack should be running before down"
    result = stack.bgpo("down")
    assert result.returncode == 0, result.stdout + result.stderr
    time.sleep(1)
    assert stack.leftovers(int(state["sid"])) == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{stack.url}/healthz", timeout=2)
