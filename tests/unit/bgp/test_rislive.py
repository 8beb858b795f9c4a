from pathlib import Path

import pytest

from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.parsers.rislive import parse_line
from bgp_orchestrator.bgp.update import Kind


def test_the_real_stream(bgp_data: Path) -> None:
    lines = (bgp_data / "rislive" / "ris-live-stream.2019-03-26.jsonl").read_text().splitlines()
    updates, errors = [], []
    for line in lines:
        try:
            updates.extend(parse_line(line))
        except Malformed as exc:
            errors.append(exc.code)
    first = updates[0]
    assert first.kind == Kind.ANNOUNCE and first.prefix == "45.161.192.0/23"
    assert first.peer_asn == 11708 and first.collector == "rrc00"
    assert first.as_path[-1] == 268481 and first.as_path[0] == 11708
    assert any(u.kind == Kind.PEER_DOWN and u.peer_asn == 24931 for u in updates)
    # the ris_error line and the deliberately malformed last line are rejected with reasons
    assert errors == ["ris-error", "malformed-json"]


def test_as_sets_and_communities() -> None:
    line = (
        '{"type":"ris_message","data":{"timestamp":1.5,"peer":"2001:db8::1","peer_asn":"3356",'
        '"host":"rrc21","type":"UPDATE","path":[3356,174,[200100,200101]],'
        '"community":[[65535,65281],[3356,100]],'
        '"announcements":[{"next_hop":"2001:db8::1","prefixes":["2A0B:4E00::/32"]}],'
        '"withdrawals":["91.200.8.0/22"]}}'
    )
    announce, withdraw = parse_line(line)
    assert announce.as_path == (3356, 174, (200100, 200101))
    assert announce.prefix == "2a0b:4e00::/32"
    assert announce.communities == (0xFFFFFF01, (3356 << 16) | 100)
    assert withdraw.kind == Kind.WITHDRAW and withdraw.prefix == "91.200.8.0/22"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("not json", "malformed-json"),
        ('{"type":"pong"}', "unknown-message"),
        ('{"type":"ris_message","data":{"peer":"1.2.3.4"}}', "malformed-message"),
        (
            '{"type":"ris_message","data":{"timestamp":1,"peer":"1.2.3.4","peer_asn":"1",'
            '"type":"WHATEVER"}}',
            "unknown-message",
        ),
        (
            '{"type":"ris_message","data":{"timestamp":1,"peer":"1.2.3.4","peer_asn":"1",'
            '"type":"UPDATE","path":[1],"announcements":[{"prefixes":["1.2.3.4/24"]}]}}',
            "invalid-prefix",
        ),
    ],
)
def test_bad_input_has_a_reason(line: str, code: str) -> None:
    with pytest.raises(Malformed) as info:
        parse_line(line)
    assert info.value.code == code
