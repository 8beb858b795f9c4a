"""MRT parsing against bgpdump's output for the same files (the ground truth)."""

import gzip
import ipaddress
from collections import Counter
from pathlib import Path

import pytest

from bgp_orchestrator.bgp.parsers import mrt
from bgp_orchestrator.bgp.update import Kind, path_text

EXPECTED = {
    "updates.20020722.2238.gz",
    "updates.20070211.0141.gz",
    "updates.20100722.2015.gz",
    "updates.20160811.1600.gz",
    "updates.long_withdrawal.gz",
    "bview.20020722.2337.gz",
}


def _ours(path: Path) -> tuple[Counter[tuple[str, str, str, str]], int, list[str]]:
    lines: Counter[tuple[str, str, str, str]] = Counter()
    states = 0
    errors = []
    for record in mrt.read(path):
        if record.error:
            errors.append(record.error.code)
            continue
        states += record.state_change
        for u in record.updates:
            if u.kind == Kind.ANNOUNCE:
                lines["A", u.peer_address, u.prefix, path_text(u.as_path)] += 1
            elif u.kind == Kind.WITHDRAW:
                lines["W", u.peer_address, u.prefix, ""] += 1
    return lines, states, errors


def _addr(text: str) -> str:
    """RFC 5952 form (bgpdump compresses a single zero group with '::')."""
    return str(ipaddress.ip_address(text))


def _set_normalised(path: str) -> str:
    """bgpdump prints AS_SET members as received; an AS_SET is a set (sorted, unique)."""
    out = []
    for token in path.split(" "):
        if token.startswith("{"):
            members = sorted({int(a) for a in token.strip("{}").split(",") if a})
            out.append("{" + ",".join(map(str, members)) + "}")
        else:
            out.append(token)
    return " ".join(out)


def _bgpdump(path: Path) -> tuple[Counter[tuple[str, str, str, str]], int]:
    lines: Counter[tuple[str, str, str, str]] = Counter()
    states = 0
    with gzip.open(path, "rt") as f:
        for line in f:
            parts = line.rstrip("\n").split("|")
            kind = parts[2]
            if kind == "STATE":
                states += 1
            elif kind in ("A", "B"):
                lines["A", _addr(parts[3]), parts[5], _set_normalised(parts[6])] += 1
            elif kind == "W":
                lines["W", _addr(parts[3]), parts[5], ""] += 1
    return lines, states


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_matches_bgpdump_line_for_line(bgp_data: Path, name: str) -> None:
    ours, our_states, _ = _ours(bgp_data / "mrt" / name)
    theirs, their_states = _bgpdump(bgp_data / "mrt" / "bgpdump-expected" / f"{name}.bgp.gz")
    assert our_states == their_states
    assert sum(ours.values()) == sum(theirs.values())
    assert ours == theirs


def test_every_file_replays_and_corruption_is_reported(bgp_data: Path) -> None:
    for path in sorted((bgp_data / "mrt").glob("*.*z*")):
        _, _, errors = _ours(path)
        if path.name.startswith("rrc01_2000"):
            # the file carries 63 corrupted records: each reported, the rest decoded
            assert len(errors) == 63 and set(errors) == {"corrupted-mrt"}


def test_as4_path_is_merged_for_2_byte_sessions() -> None:
    merged = mrt.merge_as4([3356, 23456, 23456], [196615, 200100])
    assert merged == (3356, 196615, 200100)
    assert mrt.merge_as4([3356, 1299], [1, 2, 3]) == (3356, 1299)  # longer AS4_PATH is ignored


def test_truncated_file_ends_with_a_reason(tmp_path: Path, bgp_data: Path) -> None:
    raw = gzip.decompress((bgp_data / "mrt" / "updates.20100722.2015.gz").read_bytes())
    cut = tmp_path / "cut.mrt"
    cut.write_bytes(raw[: len(raw) // 2])
    records = list(mrt.read(cut))
    assert records[-1].error is not None
    assert records[-1].error.code in {"corrupted-mrt", "truncated-mrt"}
    assert sum(len(r.updates) for r in records) > 1000


RAW_PEER_FILES = [
    "updates.20160811.1600.gz",  # BGP4MP_MESSAGE_AS4, IPv4 and IPv6 peers
    "updates.20020722.2238.gz",  # 2-byte BGP4MP, state changes
    "updates.et-header.2015.gz",  # BGP4MP_ET
    "rrc01_2000.11_updates.20001104.0124.gz",  # corrupted records among them
]


@pytest.mark.parametrize("name", [*RAW_PEER_FILES, "bview.20020722.2337.gz"])
def test_the_raw_peer_is_the_decoded_one(bgp_data: Path, name: str) -> None:
    """Shards skip other peers' records by the peer read from the raw bytes: it must be
    the address the decoder gives their updates (BGP4MP, BGP4MP_ET, TABLE_DUMP)."""
    import itertools

    records = mrt.read(bgp_data / "mrt" / name, peers=lambda peer: True)
    checked = 0
    for record in itertools.islice(records, 5_000):
        if record.updates:
            assert {u.peer_address for u in record.updates} == {record.peer}, record.position
            checked += 1
    assert checked > 200


def test_start_at_and_a_peer_filter_skip_records_without_changing_the_others(
    bgp_data: Path,
) -> None:
    path = bgp_data / "mrt" / "rrc01_2000.11_updates.20001104.0124.gz"
    whole = list(mrt.read(path))
    later = list(mrt.read(path, start_at=400))
    assert [r.position for r in later] == [r.position for r in whole]
    assert all(r.skipped for r in later[:399]) and not any(r.skipped for r in later[399:])
    assert [(r.updates, r.error and r.error.code) for r in later[399:]] == [
        (r.updates, r.error and r.error.code) for r in whole[399:]
    ]
    peers = {u.peer_address for r in whole for u in r.updates}
    keep = sorted(peers)[0]
    mine = list(mrt.read(path, peers=lambda peer: peer == keep))
    for ours, full in zip(mine, whole, strict=True):
        if ours.skipped:
            assert ours.peer is None and all(u.peer_address != keep for u in full.updates)
        else:
            assert ours.updates == full.updates and (ours.error is None) == (full.error is None)
    assert {u.peer_address for r in mine for u in r.updates} == {keep}


@pytest.mark.parametrize(
    "name",
    sorted(
        {
            "ris.rrc06.updates.1427846400.gz",
            "routeviews.route-views.jinx.updates.1427846400.bz2",
            "rrc01_2000.11_updates.20001104.0124.gz",  # corrupted records
            "rrc03_2010.02_updates.20100227.1600.first-796-records.gz",  # Quagga states 7/8
            "rrc15_2010.02_updates.20100227.1610.gz",
            "updates.20020722.2238.gz",
            "updates.20070211.0141.gz",
            "updates.20100722.2015.gz",
            "updates.20160811.1600.gz",
            "updates.et-header.2015.gz",  # BGP4MP_ET
            "updates.long_withdrawal.gz",
        }
    ),
)
def test_the_fast_decoder_gives_what_mrtparse_gives(bgp_data: Path, name: str) -> None:
    """Record by record: updates, state changes, errors and their reasons."""
    import itertools

    from bgp_orchestrator.bgp.parsers import bgp4mp

    path = bgp_data / "mrt" / name
    fast_records = 0
    original = bgp4mp.decode

    def counted(*args: object) -> object:
        nonlocal fast_records
        result = original(*args)  # type: ignore[arg-type]
        fast_records += result is not None
        return result

    def outcome(record: mrt.Record) -> tuple[object, ...]:
        error = record.error
        return (record.position, record.updates, record.state_change, error and error.message)

    limit = 15_000
    slow = [outcome(r) for r in itertools.islice(mrt.read(path, fast=False), limit)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bgp4mp, "decode", counted)
        fast = [outcome(r) for r in itertools.islice(mrt.read(path), limit)]
    assert fast == slow
    # and it did the work (older dumps hold many KEEPALIVE/OPEN records: mrtparse's)
    assert fast_records > len(slow) / 3
