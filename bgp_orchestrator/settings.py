"""The one settings object of the project (environment prefix ``BGPO_``).

Nothing is read at import time: call :func:`get_settings` (cached) or build
``Settings()`` explicitly, e.g. inside a Serve deployment's ``__init__``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "production"]
Ingress = Literal["haproxy", "proxy"]

# Passwords that must never reach production; a DSN that carries one is refused.
_PLACEHOLDER_SECRETS = frozenset(
    {"", "postgres", "password", "changeme", "change-me", "secret", "admin", "root", "test"}
)

#: Networks production never lets webhooks reach, whatever BGPO_WEBHOOK_ALLOWED_NETWORKS says.
NEVER_IN_PRODUCTION = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128")
)

# Every TCP port the stack listens on (a second stack on one machine changes them all).
PORT_FIELDS = (
    "embedded_postgres_port",
    "embedded_redis_port",
    "embedded_kafka_port",
    "ray_port",
    "ray_dashboard_port",
    "ray_client_server_port",
    "ray_dashboard_agent_port",
    "api_port",
    "haproxy_stats_port",
    "haproxy_metrics_port",
    "embedded_victoria_metrics_port",
    "embedded_oidc_port",
)


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("bgp-orchestrator", appauthor=False))


def _check_port(value: int, name: str) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{name} must be a TCP port between 1 and 65535, got {value}")
    return value


class Settings(BaseSettings):
    """Every knob of the system. Each field is read from ``BGPO_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="BGPO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    environment: Environment = Field(
        "development",
        description="development accepts the tenant header and embedded services; "
        "production requires configured servers and real credentials.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where embedded services keep their data, logs and pid files.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # External services. Unset means: `bgpo up` starts an embedded one.
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/db; unset = embedded PostgreSQL"
    )
    redis_url: SecretStr | None = Field(
        None, description="redis://host:port/db; unset = embedded Redis"
    )
    kafka_bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; unset = embedded Kafka-protocol broker"
    )

    # Embedded services (only used when the matching URL above is unset).
    embedded_postgres_port: int = 54329
    embedded_redis_port: int = 6390
    embedded_kafka_port: int = 19092
    embedded_database: str = Field("bgpo", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    # Ray and Serve.
    ray_address: str | None = Field(
        None, description="Address of an existing Ray cluster; unset = `up` starts a local head."
    )
    ray_port: int = Field(6380, description="GCS port of the local Ray head (6379 is Redis').")
    ray_dashboard_host: str = "127.0.0.1"
    ray_dashboard_port: int = 8265
    ray_num_cpus: int | None = Field(
        None,
        ge=1,
        description="Logical CPUs (scheduling slots) the local head offers; unset = four per "
        "core, at least 8. Serve replicas hold their CPUs for life while mostly waiting on "
        "I/O, and Ray Data tasks ask for a whole CPU each: without the headroom a training "
        "job's data tasks would wait forever behind its own training workers.",
    )
    ray_client_server_port: int = 10001
    ray_dashboard_agent_port: int = 52365
    ray_temp_dir: Path | None = Field(
        None,
        description="Session directory of the local Ray head; unset = a short path in /tmp "
        "derived from data_dir (Unix socket paths must stay under 108 bytes).",
    )
    ray_auth_mode: Literal["token", "disabled"] = Field(
        "token",
        description="token: the local head requires Ray's bearer token (~/.ray/auth_token, "
        "generated when missing); disabled: no authentication on the Ray APIs.",
    )
    api_host: str = Field("127.0.0.1", description="Interface the Serve HTTP ingress binds.")
    api_port: int = 8000
    serve_ingress: Ingress = Field(
        "haproxy",
        description="haproxy: Serve's HAProxy ingress with direct-ingress replicas (chosen by "
        "bench/api_latency.py); proxy: Serve's default Python HTTP proxy.",
    )
    haproxy_stats_port: int = 8404
    haproxy_metrics_port: int = 9101

    # Identity. Production validates Keycloak's tokens; development starts an
    # embedded OIDC provider (`up`) and also accepts X-Tenant on loopback.
    oidc_issuer: str | None = Field(
        None,
        description="OIDC issuer URL (Keycloak: https://HOST/realms/REALM); unset in "
        "development = the embedded provider `up` starts.",
    )
    oidc_audience: str = Field(
        "bgpo-api", description="Required `aud` of bearer tokens (the API's client id)."
    )
    oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="Signature algorithms accepted on bearer tokens (never `none` or HS*).",
    )
    oidc_roles_claim: str = Field(
        "realm_access.roles", description="Dotted path of the roles list in a token."
    )
    oidc_tenant_claim: str = Field("tenant", description="Claim holding the tenant slug.")
    oidc_jwks_ttl_s: float = Field(
        300.0, gt=0, description="How long fetched signing keys are trusted before a refetch."
    )
    portal_client_id: str = Field("bgpo-portal", description="OIDC client id of the portal.")
    portal_client_secret: SecretStr | None = Field(
        None, description="OIDC client secret of the portal (confidential client)."
    )
    portal_session_secret: SecretStr | None = Field(
        None,
        description="Key that signs portal session cookies; unset in development = generated "
        "and kept in data_dir; required in production.",
    )
    embedded_oidc_port: int = Field(
        8480, description="Port of the embedded OIDC provider (development)."
    )
    api_key_secret: SecretStr | None = Field(
        None,
        description="Key of the HMAC that API keys are stored under (at least 32 "
        "characters); unset in development = generated and kept in data_dir; required in "
        "production.",
    )

    usage_flush_s: float = Field(
        30.0,
        gt=0,
        description="How often the API and the session-stats worker write the usage they "
        "counted (API calls, updates per tenant) to PostgreSQL; the portal's usage page and "
        "invoices read it.",
    )

    # Webhooks: where they may point, how long and how much an attempt may take.
    webhook_allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks webhooks may reach although not public (JSON list of CIDRs, "
        'e.g. ["10.20.0.0/16"] for a lab; tests use ["127.0.0.0/8"]). Every other '
        "loopback, link-local, private, multicast, unspecified or reserved address is "
        "refused; production refuses loopback, link-local and unspecified ones here.",
    )
    webhook_secret_keys: SecretStr | None = Field(
        None,
        description="Comma-separated Fernet keys that encrypt webhook signing secrets at "
        "rest (the first encrypts, all decrypt: rotation); unset in development = a key "
        "generated in data_dir; required in production.",
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Total seconds of one delivery attempt (DNS included)."
    )
    webhook_max_response_bytes: int = Field(
        65536, ge=1024, description="Bytes of a receiver's answer read; the rest is dropped."
    )

    # E-mail alerts: the SMTP server (relay) the dispatcher sends through; unset host = off.
    smtp_host: str | None = Field(
        None,
        description="SMTP server (relay) that sends alert e-mail; unset = e-mail alerts are "
        "off (deliveries to e-mail channels fail as 'not sent', the portal says so).",
    )
    smtp_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Its port; unset = 587 (starttls), 465 (tls) or 25 (none).",
    )
    smtp_from: str = Field(
        "bgp-orchestrator@localhost",
        description="From address of alert e-mail (a sender the relay accepts).",
    )
    smtp_username: str | None = Field(None, description="SMTP AUTH user; unset = no login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP AUTH password.")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls = upgrade the connection (refused if the server cannot); "
        "tls = TLS from the first byte (port 465); none = plain text (a local relay only).",
    )
    smtp_timeout_s: float = Field(
        10.0, gt=0, le=30, description="Total seconds of one e-mail attempt (connect to QUIT)."
    )
    smtp_link_base_url: str | None = Field(
        None,
        description="Public base URL that alert e-mail links to (portal at /portal/, API at "
        "/api/v1/...); unset = the API URL of this stack.",
    )

    # Abuse limits of the API.
    rate_limit_key_per_minute: int = Field(
        600,
        ge=0,
        description="Requests per minute one API key (or signed-in user) may make, a "
        "minute's worth at once; 0 = unlimited.",
    )
    rate_limit_tenant_per_minute: int = Field(
        3000,
        ge=0,
        description="Requests per minute all credentials of one tenant may make together; "
        "0 = unlimited.",
    )
    api_max_body_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest request body the API reads; larger ones answer 413.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks of reverse proxies whose X-Forwarded-Proto is believed (JSON "
        'list of CIDRs, e.g. ["10.0.0.0/8"] for the cluster\'s ingress); HSTS is sent on '
        "requests that arrived over TLS, directly or through one of them.",
    )
    hsts_max_age_s: int = Field(
        31536000, ge=0, description="max-age of Strict-Transport-Security (0 = no HSTS)."
    )

    # The BGP data path.
    kafka_topic: str = Field("bgp.updates", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    kafka_dlq_topic: str = Field("bgp.updates.dlq", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    kafka_partitions: int = Field(
        8, ge=1, le=1024, description="Partitions of the updates topic (created by `up`)."
    )
    detector_group: str = Field("bgpo-detectors", description="Kafka consumer group of detectors")
    session_stats_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU niceness of the session-stats replicas: their windows and features "
        "may lag a burst by a minute, the detectors' alerts may not, so on a shared machine "
        "the detectors and the ingest commands get the CPU first (0 = equal).",
    )
    session_stats_cpu_share: float = Field(
        0.2,
        ge=0,
        le=64,
        description="Cores each session-stats replica may use while the machine's CPU is "
        "contended (Linux CPU pressure, `/proc/pressure/cpu` some avg10, at or above "
        "BGPO_SESSION_STATS_PRESSURE_PCT): the loop pauses between turns to keep to it, "
        "and runs at full speed when nothing waits for a CPU. 0 = never paced.",
    )
    session_stats_pressure_pct: float = Field(
        10.0,
        ge=0,
        le=100,
        description="CPU pressure (% of the last 10 s some task waited for a CPU) from "
        "which the session-stats replicas keep to BGPO_SESSION_STATS_CPU_SHARE.",
    )
    session_stats_group: str = Field(
        "bgpo-session-stats",
        description="Kafka consumer group of the live session stats' partial stage (reads "
        "the updates topic).",
    )
    session_windows_topic: str = Field(
        "bgp.session-windows",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Topic of partial session windows, keyed by session: the session "
        "stats' partial stage writes it, their merge stage reads it (created on start).",
    )
    session_merge_group: str = Field(
        "bgpo-session-merge",
        description="Kafka consumer group of the session stats' merge stage; its name also "
        "tags the live feature files.",
    )
    session_stats_grace_s: float = Field(
        15.0,
        ge=0,
        description="Seconds of event time a session window stays open after its end for "
        "late updates; when the stream is quiet, event time runs on with the replica's "
        "clock, so a stopped stream's last window closes this long after its end.",
    )
    session_merge_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Seconds (on the merging replica's clock) a partial session window "
        "waits for the other partitions' partials of it: then it is merged with what "
        "arrived, so a partition that never reports holds the features back no longer.",
    )
    session_stats_checkpoint_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between checkpoints of the session stats' state (route tables, "
        "open windows, the hour of feature history) in Redis: how much a restart replays.",
    )
    feature_compact_after_s: int = Field(
        3600,
        ge=0,
        description="Live feature files of an hour (then a day) are merged into one file "
        "once the newest window is this many seconds past the range's end.",
    )
    rpki_vrp_file: Path | None = Field(
        None, description="Routinator / rpki-client VRP export (CSV or JSON); reloaded on change."
    )
    as_relationships_file: Path | None = Field(
        None, description="CAIDA serial-1/serial-2 AS relationships (plain, .bz2 or .gz)."
    )
    aspa_file: Path | None = Field(
        None,
        description="Validated ASPA objects: rpki-client JSON (`aspas`) or Routinator "
        "jsonext/json; may be the same file as the VRPs. Reloaded on change.",
    )
    visibility_share: float = Field(0.5, gt=0, le=1)
    visibility_min_peers: int = Field(3, ge=1)
    global_observations: bool = Field(
        True, description="Store RPKI-invalid/bogon/MOAS observations of prefixes no tenant owns."
    )
    leak_min_confidence: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Route leaks of lower confidence are stored as observations (severity info), "
        "not alerts; 0 alerts on every valley-free violation.",
    )
    leak_window_s: float = Field(
        300.0, gt=0, description="Route leaks: window over which prefixes and peers are counted."
    )
    leak_baseline_s: float = Field(
        3600.0,
        gt=0,
        description="Route leaks: a leaker/neighbour pair seen leaking this long ago is "
        "long-standing, not new.",
    )
    rislive_url: str = "wss://ris-live.ripe.net/v1/ws/"
    kafka_publish_timeout_s: float = Field(
        15.0,
        gt=0,
        description="Seconds a Kafka record of the ingest commands may wait for the broker's "
        "acknowledgement (the client retries within that) before it is sent again.",
    )
    kafka_publish_retries: int = Field(
        3,
        ge=0,
        description="Times a record is sent again before the ingest command fails with "
        "kafka-publish-failed and prints where to resume.",
    )
    kafka_publish_backoff_s: float = Field(
        0.5, gt=0, description="First wait before sending a record again (it doubles)."
    )
    stall_after_s: float = Field(
        60.0,
        gt=0,
        description="A partition with records after its committed offset that has not "
        "progressed for this long is stalled: the worker's health check fails and "
        "`bgpo status` reports it (exit 1).",
    )

    # Flap prediction.
    flap_window_s: int = Field(300, ge=10, description="Feature window per session (seconds).")
    flap_horizon_s: int = Field(
        1800, ge=60, description="A flap is predicted this many seconds ahead."
    )
    flap_withdraw_share: float = Field(
        0.5, gt=0, le=1, description="Withdrawing this share of its prefixes counts as a flap."
    )
    model_store: str | None = Field(
        None,
        description="Where model artifacts go: a directory or an s3:// / gs:// URI; "
        "unset = <data_dir>/models.",
    )
    model_poll_s: float = Field(
        5.0, gt=0, description="How often predictors check the registry for the active model."
    )
    materialize_interval_s: float = Field(
        300.0, gt=0, description="How often the stack moves new features into the online store."
    )

    # PostgreSQL pool.
    db_pool_min_size: int = Field(0, ge=0)
    db_pool_max_size: int = Field(10, ge=1)
    db_connect_timeout_s: float = Field(3.0, gt=0)
    db_command_timeout_s: float = Field(10.0, gt=0)
    db_acquire_timeout_s: float = Field(3.0, gt=0)

    # Metric series (anomaly detection).
    victoria_metrics_url: str | None = Field(
        None,
        description="http://host:port of a VictoriaMetrics server for the per-session metric "
        "series; unset = embedded VictoriaMetrics when the `victoria-metrics` binary is "
        "installed, else Parquet files under <data_dir>/metrics.",
    )
    embedded_victoria_metrics_port: int = 8428
    metrics_retention: str = Field(
        "90d",
        pattern=r"^[1-9][0-9]*[hdwy]?$",
        description="How long the embedded VictoriaMetrics keeps points (its -retentionPeriod: "
        "24h, 90d, 12w, 1y; a bare number means months); older points are discarded, "
        "also when written.",
    )
    metric_store: Literal["auto", "victoriametrics", "parquet"] = Field(
        "auto",
        description="auto: VictoriaMetrics when configured or installed, else Parquet; "
        "victoriametrics: refuse to fall back; parquet: always the Parquet files.",
    )
    anomaly_fit_interval_s: float = Field(
        3600.0,
        ge=0,
        description="How often the stack submits the anomaly fitting job (jobs.fit_anomalies "
        "over the last 14 days); 0 = never (run it with `ray job submit`).",
    )

    @field_validator("victoria_metrics_url")
    @classmethod
    def _victoria_metrics_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                f"BGPO_VICTORIA_METRICS_URL must be http(s)://host:port, got {value!r}"
            )
        return value.rstrip("/")

    @field_validator(*PORT_FIELDS)
    @classmethod
    def _valid_port(cls, value: int, info: ValidationInfo) -> int:
        return _check_port(value, f"BGPO_{(info.field_name or 'port').upper()}")

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
                raise ValueError(
                    f"BGPO_DATABASE_URL must start with postgresql://, got scheme {scheme!r}"
                )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"redis", "rediss", "unix"}:
                raise ValueError(
                    f"BGPO_REDIS_URL must start with redis://, rediss:// or unix://, "
                    f"got scheme {scheme!r}"
                )
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _kafka_servers(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(
                    f"BGPO_KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port], got {server!r}"
                )
            _check_port(int(port), "BGPO_KAFKA_BOOTSTRAP_SERVERS port")
        return value

    @model_validator(mode="after")
    def _production_needs_real_services(self) -> Settings:
        if self.environment != "production":
            return self
        missing = [
            name
            for name, value in (
                ("BGPO_DATABASE_URL", self.database_url),
                ("BGPO_REDIS_URL", self.redis_url),
                ("BGPO_KAFKA_BOOTSTRAP_SERVERS", self.kafka_bootstrap_servers),
                # Parquet metric files on one node's disk are no store for a cluster;
                # BGPO_METRIC_STORE=parquet says so on purpose (a shared volume).
                (
                    "BGPO_VICTORIA_METRICS_URL",
                    self.victoria_metrics_url or (self.metric_store == "parquet" or None),
                ),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                "production mode does not start embedded services; set " + ", ".join(missing)
            )
        for name, url in (
            ("BGPO_DATABASE_URL", self.database_url),
            ("BGPO_REDIS_URL", self.redis_url),
        ):
            assert url is not None
            password = urlsplit(url.get_secret_value()).password
            if password is not None and password.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} carries a placeholder password; use a real secret")
        identity = [
            name
            for name, value in (
                ("BGPO_OIDC_ISSUER", self.oidc_issuer),
                ("BGPO_API_KEY_SECRET", self.api_key_secret),
            )
            if not value
        ]
        if identity:
            raise ValueError(
                "production mode authenticates callers with the OIDC issuer's tokens and "
                "API keys; set " + ", ".join(identity)
            )
        return self

    @field_validator("api_key_secret")
    @classmethod
    def _real_api_key_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if len(secret) < 32 or secret.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError(
                    "BGPO_API_KEY_SECRET must be a random secret of at least 32 characters"
                )
        return value

    @property
    def api_on_loopback(self) -> bool:
        """True when the API binds only a loopback interface."""
        return host_is_loopback(self.api_host)

    @model_validator(mode="after")
    def _production_webhook_networks(self) -> Settings:
        if self.environment != "production":
            return self
        for net in self.webhook_allowed_networks:
            for never in NEVER_IN_PRODUCTION:
                if net.version == never.version and net.overlaps(never):
                    raise ValueError(
                        f"BGPO_WEBHOOK_ALLOWED_NETWORKS: {net} overlaps {never}; production "
                        "never sends webhooks to loopback, link-local or unspecified addresses"
                    )
        return self

    @model_validator(mode="after")
    def _smtp_login_encrypted(self) -> Settings:
        if self.smtp_password is not None and self.smtp_tls == "none" and not self.development:
            raise ValueError(
                "BGPO_SMTP_PASSWORD with BGPO_SMTP_TLS=none would send the password in clear "
                "text; production needs starttls or tls for an SMTP login"
            )
        return self

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def run_dir(self) -> Path:
        """Pid files, logs and sockets of the processes `bgpo up` starts."""
        return self.data_dir / "run"

    @property
    def ray_session_dir(self) -> Path:
        if self.ray_temp_dir is not None:
            return self.ray_temp_dir.expanduser().absolute()
        digest = hashlib.sha1(str(self.data_dir).encode(), usedforsecurity=False).hexdigest()[:8]
        return Path(tempfile.gettempdir()) / f"bgpo-ray-{digest}"

    @property
    def haproxy_dir(self) -> Path:
        """HAProxy's config and admin socket; kept short (HAProxy's socket path limit is 97)."""
        digest = hashlib.sha1(str(self.data_dir).encode(), usedforsecurity=False).hexdigest()[:8]
        return Path(tempfile.gettempdir()) / f"bgpo-hap-{digest}"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host  # noqa: S104
        return f"http://{host}:{self.api_port}"

    @property
    def model_store_uri(self) -> str:
        return self.model_store or str(self.data_dir / "models")

    @property
    def dashboard_url(self) -> str:
        host = self.ray_dashboard_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        return f"http://{host}:{self.ray_dashboard_port}"


def host_is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (0.0.0.0 and :: are every interface, not loopback)."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
