import pytest

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.prefix import (
    Net,
    bucket_of,
    covers,
    format_net,
    parse_canonical,
    parse_net,
    partition_for,
)
from bgp_orchestrator.bgp.update import Kind, Update


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0.0/0",
        "45.65.12.0/24",
        "2a0b:4e00::/32",
        "::/0",
        "2a0b:4e00:1:1::/64",
        "255.255.255.255/32",
    ],
)
def test_round_trip(text: str) -> None:
    assert format_net(parse_net(text)) == text


@pytest.mark.parametrize(
    "bad", ["45.65.12.1/24", "1.2.3.4", "1.2.3.4/33", "x/8", "::/129", "1.2.3.4/a"]
)
def test_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_net(bad)


def test_buckets_keep_more_specifics_together() -> None:
    assert bucket_of("45.65.12.0/24") == bucket_of("45.65.0.0/16") == "45.65.0.0/16"
    assert bucket_of("45.0.0.0/8") == "45.0.0.0/8"  # shorter than /16: its own bucket
    assert bucket_of("2a0b:4e00:1::/48") == "2a0b:4e00::/32"
    for n in (4, 8, 32):
        assert partition_for("45.65.12.0/24", n) == partition_for("45.65.200.0/22", n)
    assert covers(parse_net("45.65.0.0/16"), parse_net("45.65.12.0/24"))
    assert not covers(parse_net("45.65.12.0/24"), parse_net("45.65.0.0/16"))
    assert not covers(Net(4, 0, 0), parse_net("::/0"))


def test_codec_round_trip_and_session_broadcast() -> None:
    ups = [
        Update(
            Kind.ANNOUNCE,
            1.5,
            "10.0.0.1",
            3356,
            "45.65.12.0/24",
            (3356, (1, 2)),
            (5,),
            "nh",
            "test",
            "c",
            ((1, 2, 3),),
        ),
        Update(Kind.PEER_DOWN, 2.0, "10.0.0.1", 3356),
    ]
    assert codec.decode_batch(codec.encode_batch(ups)) == ups
    groups = codec.split_by_partition(ups, 4)
    assert sum(1 for g in groups.values() if ups[1] in g) == 4


@pytest.mark.parametrize("data", [b"\x00\x01garbage", b"", codec.encode_batch([])[:-1]])
def test_codec_rejects_garbage(data: bytes) -> None:
    with pytest.raises(Malformed):
        codec.decode_batch(data)


def test_the_wire_format_is_fields_in_order_with_the_kind_as_an_int() -> None:
    import msgpack  # type: ignore[import-untyped]

    update = Update(Kind.WITHDRAW, 1.5, "10.0.0.1", 3356, "45.65.12.0/24", collector="c")
    row = [2, 1.5, "10.0.0.1", 3356, "45.65.12.0/24", [], [], "", "", "c", []]
    assert codec.encode_batch([update]) == msgpack.packb([1, [row]], use_bin_type=True)


@pytest.mark.parametrize("count", [0, 1, 15, 16, 600, 65535, 65536])
def test_fragments_join_into_the_batch_of_all_their_rows(count: int) -> None:
    updates = [
        Update(Kind.ANNOUNCE, 1.0, "p", i, f"10.{i % 256}.0.0/16", (1, (2, 3)), (5,))
        for i in range(count)
    ]
    for size in (7, 5000):
        parts = [updates[i : i + size] for i in range(0, count, size)]
        joined = codec.join_rows(count, [codec.encode_rows(p) for p in parts])
        assert joined == codec.encode_batch(updates)
    assert codec.decode_batch(codec.join_rows(count, [codec.encode_rows(updates)])) == updates


def test_partitions_are_the_same_from_the_cache_and_from_scratch() -> None:
    import zlib

    from bgp_orchestrator.bgp.parsers.common import canonical_prefix
    from bgp_orchestrator.bgp.prefix import Partitioner, bucket

    for text in ("45.65.12.0/24", "2a0b:4e00:1::/48", "8.0.0.0/8", "0.0.0.0/0"):
        b = bucket(parse_net(text))
        expected = zlib.crc32(b.value.to_bytes(16, "big") + bytes((b.afi, b.length))) % 8
        assert partition_for(text, 8) == expected == Partitioner(8)(text)
        canonical_prefix(text)  # parsing fills the hash cache the publisher reads
        assert Partitioner(8).hashes.young.get(text) is not None
        assert partition_for(text, 8) == expected


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.0/24",
        "192.0.2.0/024",
        "0.0.0.0/0",
        "255.255.255.255/32",
        "2001:DB8::/32",
        "2001:0db8:0000::/48",
        "::/0",
        "::ffff:192.0.2.0/120",
    ],
)
def test_parse_canonical_is_parse_then_format(text: str) -> None:
    net, canonical = parse_canonical(text)
    assert net == parse_net(text)
    assert canonical == format_net(net)


@pytest.mark.parametrize("text", ["01.2.3.0/24", "1.2.3/24", "1.2.3.0/33", "1.2.3.1/24", "x/8"])
def test_parse_canonical_refuses_what_parse_net_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_canonical(text)
