from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    "data",
    [
        '"announcements":[5]',
        '"announcements":"1.2.3.0/24"',
        '"announcements":[{"next_hop":"1.2.3.4","prefixes":7}]',
        '"withdrawals":7',
    ],
)
def test_misshapen_announcements_are_malformed_not_a_crash(data: str) -> None:
    line = (
        '{"type":"ris_message","data":{"timestamp":1,"peer":"1.2.3.4","peer_asn":"1",'
        f'"type":"UPDATE","path":[1],{data}}}}}'
    )
    with pytest.raises(Malformed) as info:
        parse_line(line)
    assert info.value.code == "malformed-message"


def _outcome(raw: object) -> object:
    from bgp_orchestrator.bgp.parsers.common import path_from_list

    try:
        return path_from_list(raw)
    except Malformed as exc:
        return exc.code


@given(
    st.lists(
        st.one_of(
            st.integers(-5, 2**33),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6),
            st.sampled_from(["3356", " 12", "x", ""]),
            st.lists(st.integers(-1, 2**32), max_size=3),
        ),
        max_size=8,
    )
)
def test_the_fast_path_check_accepts_and_rejects_what_the_general_one_does(
    raw: list[object],
) -> None:
    """A list takes the bulk check; a tuple of the same elements the element-wise one."""
    fast, general = _outcome(raw), _outcome(tuple(raw))
    assert fast == general
    if isinstance(fast, tuple):
        assert [type(e) for e in fast] == [type(e) for e in general]  # type: ignore[attr-defined]


def test_communities_in_bulk_and_one_by_one_agree() -> None:
    def communities(value: str) -> object:
        line = (
            '{"type":"ris_message","data":{"timestamp":1,"peer":"1.2.3.4","peer_asn":"1",'
            '"type":"UPDATE","path":[1],"community":' + value + ","
            '"announcements":[{"next_hop":"1.2.3.4","prefixes":["10.0.0.0/8"]}]}}'
        )
        try:
            return parse_line(line)[0].communities
        except Malformed as exc:
            return exc.code

    assert communities("[[65535,65281],[3356,100]]") == (0xFFFFFF01, (3356 << 16) | 100)
    assert communities('[["3356"," 100"]]') == ((3356 << 16) | 100,)  # as ever: digit strings
    for bad in ("[[65536,1]]", "[[1,-1]]", "[[true,1]]", "[[1.5,1]]", "[[1,2,3]]", "[5]", "7"):
        assert communities(bad) == "invalid-community", bad


def test_prefixes_are_remembered_in_canonical_form() -> None:
    from bgp_orchestrator.bgp.parsers.common import canonical_prefix

    class Text(str):
        pass

    for _ in range(2):  # the second time from the cache
        assert canonical_prefix("2A0B:4E00::/32") == "2a0b:4e00::/32"
        assert canonical_prefix(" 10.0.0.0/8") == "10.0.0.0/8"
        assert canonical_prefix(Text("10.1.0.0/16")) == "10.1.0.0/16"
        with pytest.raises(Malformed):
            canonical_prefix("10.0.0.1/8")  # an invalid prefix is never remembered as valid
        with pytest.raises(Malformed):
            canonical_prefix(["10.0.0.0/8"])
