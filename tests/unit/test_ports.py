import socket

import pytest

from bgp_orchestrator.errors import ConfigurationError
from bgp_orchestrator.local.ports import ensure_free, port_open


def test_taken_port_names_the_setting_and_owner() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_open("127.0.0.1", port)
        with pytest.raises(ConfigurationError) as info:
            ensure_free("127.0.0.1", port, "the API", "BGPO_API_PORT")
    assert info.value.code == "port-in-use"
    assert "BGPO_API_PORT" in info.value.message
    assert f"port {port}" in info.value.message


def test_free_port_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ensure_free("127.0.0.1", port, "the API", "BGPO_API_PORT")
    assert not port_open("127.0.0.1", port)
