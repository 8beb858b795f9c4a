"""Replay sources: chunks, --start-at, shards, pacing (files in tmp_path and the real data)."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bgp_orchestrator.bgp.parsers import rislive
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.ingest.shard import Shard, message_key
from bgp_orchestrator.ingest.sources import Chunk, Pacer, replay_chunks


def _message(rng: random.Random, i: int) -> str:
    peer = rng.choice(["192.0.2.1", "192.0.2.2", "2001:db8::1", "198.51.100.7", "203.0.113.9"])
    data: dict[str, object] = {
        "timestamp": 1_700_000_000 + i,
        "peer": peer,
        "peer_asn": str(64500 + len(peer)),
        "id": f"{peer}-{i}",
        "host": rng.choice(["rrc00", "rrc01", "rrc21"]),
        "type": "UPDATE",
    }
    if rng.random() < 0.1:
        data.update(type="RIS_PEER_STATE", state=rng.choice(["down", "connected"]))
    elif rng.random() < 0.2:
        data["withdrawals"] = [f"10.{rng.randrange(256)}.0.0/16"]
    else:
        data["path"] = [64500 + len(peer), rng.randrange(1, 65000), rng.randrange(1, 65000)]
        data["community"] = [[rng.randrange(65536), rng.randrange(65536)]]
        prefixes = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24" for _ in range(3)]
        data["announcements"] = [{"next_hop": peer, "prefixes": prefixes}]
    return json.dumps({"type": "ris_message", "data": data})


ODD_LINES = [
    "",  # blank lines are skipped
    "   ",
    "{not json",
    '{"type":"ris_error","data":{"message":"overloaded"}}',
    # escapes and a repeated key: the cheap shard key does not apply, the parse decides
    '{"type":"ris_message","data":{"timestamp":1,"peer":"192.0.2.\\u0031","peer_asn":"1",'
    '"host":"rrc00","type":"UPDATE","path":[1],'
    '"announcements":[{"next_hop":"x","prefixes":["10.9.0.0/16"]}]}}',
    '{"type":"ris_message","data":{"timestamp":1,"peer":"192.0.2.9","peer":"192.0.2.1",'
    '"peer_asn":"1","type":"UPDATE","path":[1],"withdrawals":["10.8.0.0/16"]}}',
    '{"type":"ris_message","data":{"timestamp":1,"peer":"192.0.2.1","peer_asn":"1",'
    '"type":"UPDATE","path":[1],"withdrawals":["10.7.0.1/16"]}}',  # invalid prefix, no host
]


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    rng = random.Random(5)
    lines = [_message(rng, i) for i in range(3000)]
    for n, odd in enumerate(ODD_LINES):
        lines.insert(100 + 250 * n, odd)
    path = tmp_path / "feed.jsonl"
    # a line with invalid UTF-8: read as text with a replacement character, it parses
    raw = "\n".join(lines).encode() + b"\n"
    raw += b'{"type":"ris_message","data":{"timestamp":1,"peer":"192.0.2.1","peer_asn":"1",'
    raw += b'"host":"rrc\xff","type":"RIS_PEER_STATE","state":"down"}}\n'
    path.write_bytes(raw)
    return path


def _line_by_line(path: Path) -> tuple[list[Update], list[tuple[str, str]]]:
    """What a plain reader of the file gives: text, invalid UTF-8 replaced, line by line."""
    updates: list[Update] = []
    dead: list[tuple[str, str]] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                updates.extend(rislive.parse_line(line))
            except Malformed as exc:
                dead.append((exc.code, f"{path.name}:{number}"))
    return updates, dead


def _collect(chunks: list[Chunk]) -> tuple[list[Update], list[tuple[str, str]]]:
    return (
        [u for c in chunks for u in c.updates],
        [(d.code, d.position) for c in chunks for d in c.dead],
    )


def test_chunks_give_what_reading_line_by_line_gives(feed: Path) -> None:
    chunks = list(replay_chunks(feed))
    assert _collect(chunks) == _line_by_line(feed)
    lines = feed.read_bytes().count(b"\n")
    assert sum(c.read for c in chunks) == chunks[-1].position == lines
    assert [c.position for c in chunks] == sorted(c.position for c in chunks)
    updates, dead = _collect(chunks)
    assert {code for code, _ in dead} == {"malformed-json", "ris-error", "invalid-prefix"}
    assert updates[-1].collector == "rrc\ufffd" and updates[-1].kind == Kind.PEER_DOWN


def test_start_at_gives_the_rest_of_the_file(feed: Path) -> None:
    whole = list(replay_chunks(feed))
    by_line = [(c.position, c) for c in whole]
    start = 1101
    rest = list(replay_chunks(feed, start_at=start))
    assert rest[0].position - rest[0].read + 1 == start
    tail_updates, tail_dead = _collect(rest)
    assert tail_dead == [d for d in _collect(whole)[1] if int(d[1].split(":")[1]) >= start]
    # the updates of the lines from `start` on are the whole file's last ones
    assert tail_updates == _collect(whole)[0][len(_collect(whole)[0]) - len(tail_updates) :]
    assert by_line and list(replay_chunks(feed, start_at=10**9)) == []


@pytest.mark.parametrize("by", ["peer", "collector"])
@pytest.mark.parametrize("count", [2, 3])
def test_shards_together_publish_exactly_one_unsharded_run(feed: Path, by: str, count: int) -> None:
    whole_updates, whole_dead = _collect(list(replay_chunks(feed)))
    shard_updates: list[list[Update]] = []
    shard_dead: list[tuple[str, str]] = []
    for index in range(1, count + 1):
        updates, dead = _collect(list(replay_chunks(feed, shard=Shard(index, count, by))))  # type: ignore[arg-type]
        shard_updates.append(updates)
        shard_dead.extend(dead)
    assert Counter(u for s in shard_updates for u in s) == Counter(whole_updates)
    assert sorted(shard_dead) == sorted(whole_dead)
    key = (lambda u: u.peer_address) if by == "peer" else (lambda u: u.collector)
    owners: dict[str, set[int]] = defaultdict(set)
    for index, updates in enumerate(shard_updates):
        for u in updates:
            owners[key(u)].add(index)
    assert all(len(o) == 1 for o in owners.values())  # one shard per peer (collector)
    for name, (index,) in owners.items():  # and in it, its updates in the file's order
        assert [u for u in shard_updates[index] if key(u) == name] == [
            u for u in whole_updates if key(u) == name
        ]
    assert all(shard_updates)


def test_the_cheap_shard_key_is_what_the_parser_reads(feed: Path) -> None:
    for line in feed.read_bytes().splitlines():
        try:
            updates = rislive.parse_line(line.decode("utf-8", "replace"))
        except Malformed:
            continue
        for by, field in (("peer", "peer_address"), ("collector", "collector")):
            key = message_key(line, by)
            for u in updates:
                assert key == getattr(u, field).encode(), (line, by)


def test_shard_option_is_validated() -> None:
    from bgp_orchestrator.errors import ConfigurationError

    assert Shard.parse("2/4") == Shard(2, 4, "peer")
    assert str(Shard.parse(" 1/2", "collector")) == "1/2"
    for bad in ("0/4", "5/4", "2", "a/b", "2/0"):
        with pytest.raises(ConfigurationError):
            Shard.parse(bad)
    with pytest.raises(ConfigurationError):
        Shard.parse("1/2", "prefix")


MRT = [
    "updates.20100722.2015.gz",  # session state changes
    "rrc01_2000.11_updates.20001104.0124.gz",  # corrupted records
    "routeviews.route-views.jinx.updates.1427846400.bz2",
]


@pytest.mark.parametrize("name", MRT)
def test_mrt_shards_and_start_at(bgp_data: Path, name: str) -> None:
    path = bgp_data / "mrt" / name
    whole = list(replay_chunks(path))
    whole_updates, whole_dead = _collect(whole)
    parts = [_collect(list(replay_chunks(path, shard=Shard(i, 2)))) for i in (1, 2)]
    assert Counter(parts[0][0] + parts[1][0]) == Counter(whole_updates)
    assert sorted(parts[0][1] + parts[1][1]) == sorted(whole_dead)
    assert not {u.peer_address for u in parts[0][0]} & {u.peer_address for u in parts[1][0]}
    start = whole[len(whole) // 2].position + 1
    rest_updates, rest_dead = _collect(list(replay_chunks(path, start_at=start)))
    assert rest_updates == whole_updates[len(whole_updates) - len(rest_updates) :]
    assert rest_dead == [d for d in whole_dead if int(d[1].split("#")[1]) >= start]


def test_pacer_slices_keep_order_and_spread_by_rate_or_recorded_time() -> None:
    updates = [Update(Kind.ANNOUNCE, 100.0 + i / 10, "p", 1, f"10.{i}.0.0/16") for i in range(50)]
    by_rate = Pacer(rate=1000, tick=0.01).slices(updates)
    assert [u for _, part in by_rate for u in part] == updates
    assert [len(part) for _, part in by_rate] == [10] * 5
    dues = [due for due, _ in by_rate]
    assert dues == sorted(dues) and dues[-1] - dues[0] == pytest.approx(0.04)
    by_time = Pacer(speedup=10, tick=0.005).slices(updates)  # 0.1 s apart, 10x: 0.01 s
    assert [u for _, part in by_time for u in part] == updates and len(by_time) == 50
    assert by_time[-1][0] - by_time[0][0] == pytest.approx(0.49)
    coarse = Pacer(speedup=10, tick=0.25).slices(updates)
    assert [u for _, part in coarse for u in part] == updates and 2 <= len(coarse) <= 3
    assert Pacer().slices(updates) == [(0.0, updates)] and not Pacer().active


def test_a_compressed_file_cut_short_ends_with_a_dead_letter(feed: Path, tmp_path: Path) -> None:
    import gzip

    packed = gzip.compress(feed.read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    chunks = list(replay_chunks(cut))
    updates, dead = _collect(chunks)
    assert dead[-1][0] == "truncated-input" and len(updates) > 1000
    assert int(dead[-1][1].split(":")[1]) == chunks[-1].position + 1
    whole, _ = _collect(list(replay_chunks(feed)))
    assert updates == whole[: len(updates)]  # what was read before the cut is all there
    shards = [_collect(list(replay_chunks(cut, shard=Shard(i, 2))))[1] for i in (1, 2)]
    assert sum(code == "truncated-input" for part in shards for code, _ in part) == 1
