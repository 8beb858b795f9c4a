import pytest

from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.parsers.exabgp import parse_line
from bgp_orchestrator.bgp.update import Kind

UPDATE = (
    '{ "exabgp": "5.0.0", "time": 1700000000.5, "host" : "h", "pid" : 1, "ppid" : 1, '
    '"counter": 3, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", '
    '"peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 200100 }, "direction": "receive", '
    '"message": { "update": { "attribute": { "origin": "igp", "as-path": { "0": { "element": '
    '"as-sequence", "value": [ 200100, 3356 ] }, "1": { "element": "as-set", "value": '
    '[ 200902, 200901 ] } }, "confederation-path": [], "community": [ [ 65535, 65281 ] ] }, '
    '"announce": { "ipv4 unicast": { "127.0.0.2": [ { "nlri": "45.65.12.0/24" } ] }, '
    '"ipv6 unicast": { "2001:db8::2": [ { "nlri": "2a0b:4e00::/32" } ] } }, '
    '"withdraw": { "ipv4 unicast": [ { "nlri": "91.200.8.0/22" } ] } } } } }'
)


def test_update_with_as_set_both_families_and_withdrawal() -> None:
    ups = parse_line(UPDATE, collector="lab")
    kinds = [u.kind for u in ups]
    assert kinds == [Kind.ANNOUNCE, Kind.ANNOUNCE, Kind.WITHDRAW]
    v4, v6, gone = ups
    assert v4.as_path == (200100, 3356, (200901, 200902))
    assert v4.peer_asn == 200100 and v4.peer_address == "127.0.0.2" and v4.collector == "lab"
    assert v6.prefix == "2a0b:4e00::/32" and v6.next_hop == "2001:db8::2"
    assert v4.communities == (0xFFFFFF01,)
    assert gone.prefix == "91.200.8.0/22"


def test_state_changes() -> None:
    up = (
        '{ "exabgp": "5.0.0", "time": 1.0, "type": "state", "neighbor": { "address": '
        '{ "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, '
        '"peer": 200100 }, "state": "up" } }'
    )
    (event,) = parse_line(up)
    assert event.kind == Kind.PEER_UP and event.prefix == ""
    (down,) = parse_line(up.replace('"up"', '"down"'))
    assert down.kind == Kind.PEER_DOWN
    assert parse_line(up.replace('"up"', '"connected"')) == []


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("{", "malformed-json"),
        ('{"hello": 1}', "unknown-message"),
        ('{"exabgp": "5", "type": "surprise"}', "unknown-message"),
        (UPDATE.replace("45.65.12.0/24", "45.65.12.1/24"), "invalid-prefix"),
    ],
)
def test_bad_input_has_a_reason(line: str, code: str) -> None:
    with pytest.raises(Malformed) as info:
        parse_line(line)
    assert info.value.code == code
