"""Where webhooks may point (the SSRF matrix), and how deliveries are signed."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from bgp_orchestrator.alerts.dispatcher import AlertDispatcher
from bgp_orchestrator.alerts.egress import EgressPolicy, why_refused
from bgp_orchestrator.alerts.signing import SecretBox, new_secret, signature_headers
from bgp_orchestrator.errors import ConfigurationError, InvalidInput
from bgp_orchestrator.settings import Settings

PUBLIC = "93.184.215.14"


def resolving(*answers: list[str]) -> Any:
    """A resolver giving these answers in turn (the last one from then on)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("240.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", [PUBLIC, "1.1.1.1", "2a00:1450:4001:82b::200e"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://2130706433/",  # decimal 127.0.0.1
        "http://0x7f000001/",  # hex 127.0.0.1
        "http://127.1/",
        "http://0177.0.0.1/",  # octal
        "http://localhost:9/",  # a name resolving to 127.0.0.1 (/etc/hosts)
        "https://[::ffff:7f00:1]/",
    ],
)
async def test_the_ssrf_matrix_is_refused_naming_the_field(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await EgressPolicy().check(url, "url")
    assert caught.value.field == "url"
    # (httpx already refuses some numeric forms, e.g. octal, as invalid URLs)
    assert caught.value.code in {"webhook-address-refused", "webhook-url-invalid"}


async def test_a_name_is_refused_when_any_of_its_addresses_is_not_public() -> None:
    policy = EgressPolicy(resolver=resolving([PUBLIC, "10.0.0.1"]))
    with pytest.raises(InvalidInput, match="private"):
        await policy.check("https://hooks.example.net/x")
    policy = EgressPolicy(resolver=resolving(["127.0.0.1"]))
    with pytest.raises(InvalidInput, match="loopback"):
        await policy.check("https://rebind.example.net/x")


async def test_unresolvable_hosts_and_other_schemes_are_refused() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(InvalidInput) as caught:
        await EgressPolicy(resolver=fail).check("https://nowhere.invalid/")
    assert caught.value.code == "webhook-host-unresolvable"
    for url in ("ftp://example.net/", "file:///etc/passwd", "gopher://x/"):
        with pytest.raises(InvalidInput, match="http"):
            await EgressPolicy().check(url)


async def test_the_checked_address_is_the_one_connected_to() -> None:
    target = await EgressPolicy(resolver=resolving([PUBLIC])).check(
        "https://user:pw@hooks.example.net:8443/a?b=1"
    )
    assert target.url.host == PUBLIC and target.url.port == 8443
    assert target.url.path == "/a" and target.url.query == b"b=1"
    assert target.host_header == "hooks.example.net:8443"
    assert target.sni_hostname == "hooks.example.net"  # TLS is verified against the name
    plain = await EgressPolicy().check(f"http://{PUBLIC}/")
    assert plain.sni_hostname is None and plain.host_header == PUBLIC


async def test_allowed_networks_let_a_lab_reach_its_receivers() -> None:
    lab = EgressPolicy.allowing(["127.0.0.0/8", "10.20.0.0/16"])
    assert (await lab.check("http://127.0.0.1:9/")).address == "127.0.0.1"
    assert (await lab.check("http://10.20.1.1/")).address == "10.20.1.1"
    with pytest.raises(InvalidInput):
        await lab.check("http://10.21.0.1/")
    with pytest.raises(InvalidInput):
        await lab.check("http://169.254.169.254/")


def test_production_refuses_loopback_and_link_local_lab_networks() -> None:
    production = {
        "environment": "production",
        "database_url": "postgresql://bgpo:Xk3-long-secret@db/bgpo",
        "redis_url": "redis://:Xk3-long-secret@redis:6379/0",
        "kafka_bootstrap_servers": "kafka:9092",
        "victoria_metrics_url": "http://vm:8428",
        "oidc_issuer": "https://sso.example.net/realms/bgpo",
        "api_key_secret": "k" * 8 + "Xk3-long-secret-for-api-keys-0123",
    }
    for network in ("127.0.0.0/8", "127.0.0.1/32", "169.254.0.0/16", "::1/128", "0.0.0.0/0"):
        with pytest.raises(ValidationError, match="WEBHOOK_ALLOWED_NETWORKS"):
            Settings(**production, webhook_allowed_networks=[network])  # type: ignore[arg-type]
    ok = Settings(**production, webhook_allowed_networks=["10.20.0.0/16"])  # type: ignore[arg-type]
    assert [str(n) for n in ok.webhook_allowed_networks] == ["10.20.0.0/16"]


async def test_dns_that_changes_after_the_check_is_caught_at_delivery() -> None:
    """Saved while the name pointed at a public address; at delivery it points at
    loopback: the attempt is refused before any connection."""
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    resolver = resolving([PUBLIC], ["127.0.0.1"])
    policy = EgressPolicy(resolver=resolver)
    await policy.check("http://rebind.example.net/hook")  # on save: public
    dispatcher = AlertDispatcher(object(), egress=policy)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        error = await dispatcher.post(client, "http://rebind.example.net/hook", b"{}", {})
    assert error is not None and error.startswith("Refused") and "loopback" in error
    assert sent == []


async def test_deliveries_go_to_the_checked_address_and_follow_no_redirect() -> None:
    sent: list[httpx.Request] = []

    async def redirect(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1/admin"})

    dispatcher = AlertDispatcher(
        object(),  # type: ignore[arg-type]
        egress=EgressPolicy(resolver=resolving([PUBLIC])),
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(redirect)) as client:
        error = await dispatcher.post(client, "http://hooks.example.net/in", b"{}", {})
    assert error == "HTTP 302: redirects are not followed"
    [request] = sent  # one request: the redirect was not followed
    assert request.url.host == PUBLIC and request.headers["Host"] == "hooks.example.net"


def test_signatures_verify_with_a_standard_webhooks_library() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and secret != new_secret()
    body = b'{"event":"opened","event_id":7}'
    import time

    headers = signature_headers(secret, "42", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {"event": "opened", "event_id": 7}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"7", b"8"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    stale = signature_headers(secret, "42", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, stale)


def test_secrets_are_stored_encrypted_and_keys_rotate() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    secret = new_secret()
    sealed = SecretBox([old]).seal(secret)
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    assert SecretBox([new, old]).open(sealed) == secret  # rotated: old tokens still open
    assert SecretBox([new]).open(SecretBox([new, old]).seal(secret)) == secret
    with pytest.raises(ConfigurationError) as caught:
        SecretBox([new]).open(sealed)
    assert caught.value.code == "webhook-secret-undecryptable"
    with pytest.raises(ConfigurationError, match="Fernet"):
        SecretBox(["not-a-key"])


def test_development_keeps_one_key_in_the_data_directory(tmp_path: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bgp_orchestrator.alerts.signing import DEV_KEY_FILE, secret_box

    settings = Settings(data_dir=tmp_path)
    with ThreadPoolExecutor(8) as pool:  # API and dispatcher starting together
        boxes = list(pool.map(lambda _: secret_box(settings), range(8)))
    sealed = boxes[0].seal("whsec_x")
    assert all(box.open(sealed) == "whsec_x" for box in boxes)
    key_file = tmp_path / DEV_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [DEV_KEY_FILE]
    production = Settings(
        environment="production",
        data_dir=tmp_path,
        database_url="postgresql://bgpo:Xk3-long-secret@db/bgpo",
        redis_url="redis://:Xk3-long-secret@redis:6379/0",
        kafka_bootstrap_servers="kafka:9092",
        victoria_metrics_url="http://vm:8428",
        oidc_issuer="https://sso.example.net/realms/bgpo",
        api_key_secret="Xk3-long-secret-for-api-keys-0123456789",
    )
    with pytest.raises(ConfigurationError) as caught:
        secret_box(production)
    assert caught.value.code == "webhook-secret-key-missing"
