"""TCP port checks with errors that name the owner and the setting to change."""

from __future__ import annotations

import contextlib
import socket

import psutil

from bgp_orchestrator.errors import ConfigurationError


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str | None:
    """'name (pid N)' of the process listening on ``port``, when the OS tells."""
    with contextlib.suppress(psutil.Error, PermissionError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return "another process"
                try:
                    return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    return None


def ensure_free(host: str, port: int, what: str, setting: str) -> None:
    """Raise a clear error if ``port`` cannot be bound on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            owner = port_owner(port) or "another process"
            raise ConfigurationError(
                "port-in-use",
                f"port {port} for {what} is taken by {owner}; stop it, or choose "
                f"another port with {setting}=<port>",
                setting,
                port,
            ) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Ports for a second stack come from between Ray's worker ports (10002-19999) and
# the kernel's ephemeral range (32768+): a port taken from the ephemeral range
# may be handed to some process's outgoing connection before our service binds it.
_STACK_PORTS = range(20_000, 32_768)


def _bindable(port: int) -> bool:
    for host in ("0.0.0.0", "127.0.0.1"):  # noqa: S104 (only probing)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_ports_env() -> dict[str, str]:
    """BGPO_*_PORT variables set to free ports: a second stack that collides with nothing."""
    import random

    from bgp_orchestrator.settings import PORT_FIELDS

    chosen: set[int] = set()
    rng = random.SystemRandom()
    out: dict[str, str] = {}
    for name in PORT_FIELDS:
        while True:
            port = rng.choice(_STACK_PORTS)
            if port not in chosen and _bindable(port):
                break
        chosen.add(port)
        out[f"BGPO_{name.upper()}"] = str(port)
    return out
