"""The BMP decoder on hand-built messages (RFC 7854, RFC 9069) and on bytes Debian's FRR sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp_orchestrator.bgp.parsers import bmp
from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import NO_EXPORT, Kind, Update, community
from tests.unit.bgp import bmp_messages as m

DATA = Path(__file__).parent / "data"


def router(*messages: bytes, views: tuple[str, ...] = bmp.VIEWS) -> tuple[bmp.Router, list[Update]]:
    r = bmp.Router("198.51.100.7", views, now=lambda: 42.0)
    out: list[Update] = []
    for message in messages:
        out.extend(r.handle(message))
    return r, out


def v4_update(*path: int, prefix: str = "203.0.113.0/24", size: int = 4) -> bytes:
    return m.update(
        attributes=m.origin() + m.as_path(*path, size=size) + m.next_hop("192.0.2.1"),
        announced=m.nlri(prefix),
    )


# -- the common header ------------------------------------------------------------------


def test_header_gives_length_and_type() -> None:
    assert bmp.parse_header(m.initiation()[:6]) == (len(m.initiation()), bmp.INITIATION)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (bytes([1]) + m.u32(20) + b"\x00", "version"),  # BMP v1/v2 had no length: unframeable
        (bytes([3]) + m.u32(5) + b"\x00", "length"),  # shorter than its own header
        (bytes([3]) + m.u32(bmp.MAX_MESSAGE + 1) + b"\x00", "length"),
        (b"GET / HTTP/1.1"[:6], "version"),  # something else entirely
    ],
)
def test_impossible_headers_lose_the_framing(header: bytes, field: str) -> None:
    with pytest.raises(bmp.FramingLost) as caught:
        bmp.parse_header(header)
    assert caught.value.code == "bmp-framing"
    assert caught.value.field == field


def test_a_message_whose_length_disagrees_with_its_header_is_framing_loss() -> None:
    message = m.initiation()
    with pytest.raises(bmp.FramingLost):
        bmp.Router("x").handle(message[:-1])


# -- initiation, termination ------------------------------------------------------------


def test_initiation_names_the_router_and_its_sessions() -> None:
    header = m.per_peer()
    r, updates = router(m.initiation("edge1.ams", "FRRouting 8.4.4"), m.peer_up(header))
    assert r.name == "edge1.ams"
    assert r.sys_descr == "FRRouting 8.4.4"
    assert updates == [
        Update(Kind.PEER_UP, float(m.TS), "192.0.2.1", 64500, source="bmp", collector="edge1.ams")
    ]


def test_without_initiation_the_router_is_its_address() -> None:
    _, updates = router(m.peer_up(m.per_peer()))
    assert updates[0].collector == "198.51.100.7"


def test_termination_gives_its_reason() -> None:
    r, updates = router(m.initiation(), m.termination(reason=3))
    assert updates == []
    assert r.terminated == "redundant connection; bye"


def test_malformed_initiation_tlv() -> None:
    broken = m.bmp(4, m.u16(2) + m.u16(50) + b"short")
    with pytest.raises(Malformed) as caught:
        router(broken)
    assert caught.value.code == "malformed-bmp"
    assert "runs past" in caught.value.message


# -- route monitoring -------------------------------------------------------------------


def test_pre_policy_ipv4_route_with_4_byte_asns_and_communities() -> None:
    pdu = m.update(
        attributes=m.origin()
        + m.as_path(64500, 4200000001, 13335)
        + m.next_hop("192.0.2.1")
        + m.communities((65535, 65281), (64500, 7)),
        announced=m.nlri("203.0.113.0/24") + m.nlri("198.51.100.0/25"),
        withdrawn=m.nlri("192.0.2.128/25"),
    )
    header = m.per_peer(micro=250_000)
    _, updates = router(m.initiation(), m.peer_up(header), m.route_monitoring(header, pdu))
    assert updates[1:] == [
        Update(
            Kind.WITHDRAW,
            m.TS + 0.25,
            "192.0.2.1",
            64500,
            "192.0.2.128/25",
            source="bmp",
            collector="r1",
        ),
        *(
            Update(
                Kind.ANNOUNCE,
                m.TS + 0.25,
                "192.0.2.1",
                64500,
                prefix,
                (64500, 4200000001, 13335),
                (NO_EXPORT, community(64500, 7)),
                "192.0.2.1",
                "bmp",
                "r1",
            )
            for prefix in ("203.0.113.0/24", "198.51.100.0/25")
        ),
    ]


def test_post_policy_is_a_session_of_its_own_announced_when_it_first_carries_routes() -> None:
    pre, post = m.per_peer(), m.per_peer(flags=0x40)
    _, updates = router(
        m.initiation(),
        m.peer_up(pre),
        m.route_monitoring(pre, v4_update(64500, 13335)),
        m.route_monitoring(post, v4_update(64500, 13335)),
        m.route_monitoring(post, v4_update(64500, 13335, prefix="198.51.100.0/24")),
        m.peer_down(pre, reason=4, data=b""),
    )
    assert [(u.kind, u.collector, u.prefix) for u in updates] == [
        (Kind.PEER_UP, "r1", ""),
        (Kind.ANNOUNCE, "r1", "203.0.113.0/24"),
        (Kind.PEER_UP, "r1/post-policy", ""),
        (Kind.ANNOUNCE, "r1/post-policy", "203.0.113.0/24"),
        (Kind.ANNOUNCE, "r1/post-policy", "198.51.100.0/24"),
        (Kind.PEER_DOWN, "r1", ""),
        (Kind.PEER_DOWN, "r1/post-policy", ""),
    ]


def test_ipv6_peer_with_mp_reach_and_unreach() -> None:
    header = m.per_peer("2001:db8::1", 64501)
    pdu = m.update(
        attributes=m.origin()
        + m.as_path(64501, 64777)
        + m.mp_reach_v6("2001:db8::1", "2a0b:4e00::/32")
        + m.mp_unreach_v6("2001:db8:ffff::/48")
    )
    _, updates = router(m.initiation(), m.peer_up(header), m.route_monitoring(header, pdu))
    assert [(u.kind, u.peer_address, u.prefix, u.next_hop, u.as_path) for u in updates[1:]] == [
        (Kind.WITHDRAW, "2001:db8::1", "2001:db8:ffff::/48", "", ()),
        (Kind.ANNOUNCE, "2001:db8::1", "2a0b:4e00::/32", "2001:db8::1", (64501, 64777)),
    ]


def test_two_byte_as_path_is_merged_with_as4_path() -> None:
    header = m.per_peer(asn=4200000001, flags=0x20)  # A flag: the legacy 2-byte AS_PATH
    pdu = m.update(
        attributes=m.origin()
        + m.as_path(23456, 3356, 23456, size=2)
        + m.next_hop("192.0.2.1")
        + m.as_path(4200000001, 3356, 4200000002, code=17),
        announced=m.nlri("203.0.113.0/24"),
    )
    _, updates = router(m.route_monitoring(header, pdu))
    assert updates[0].as_path == (4200000001, 3356, 4200000002)
    assert updates[0].peer_asn == 4200000001


def test_loc_rib_peer_type_3() -> None:
    header = m.per_peer("0.0.0.0", 65010, peer_type=3, bgp_id="10.0.0.254")
    _, updates = router(
        m.initiation(), m.peer_up(header), m.route_monitoring(header, v4_update(64500, 13335))
    )
    assert [(u.kind, u.collector, u.peer_address, u.peer_asn) for u in updates] == [
        (Kind.PEER_UP, "r1/loc-rib", "10.0.0.254", 65010),
        (Kind.ANNOUNCE, "r1/loc-rib", "10.0.0.254", 65010),
    ]
    assert updates[1].as_path == (64500, 13335)  # the Loc-RIB's own paths are left alone


def test_rd_instance_peers_carry_their_route_distinguisher() -> None:
    rd = m.u16(0) + m.u16(65000) + m.u32(100)
    header = m.per_peer(peer_type=1, rd=rd)
    _, updates = router(m.initiation(), m.peer_up(header))
    assert updates[0].collector == "r1/65000:100"


def test_views_not_chosen_are_skipped_and_adj_rib_out_is_never_published() -> None:
    post, out = m.per_peer(flags=0x40), m.per_peer(flags=0x10)
    r, updates = router(
        m.route_monitoring(post, v4_update(64500, 13335)),
        m.route_monitoring(out, v4_update(65010, 64500, 13335)),
        views=("pre-policy",),
    )
    assert updates == []
    assert r.stats.skipped_views == 1
    assert r.stats.skipped_adj_rib_out == 1


def test_end_of_rib_is_no_update() -> None:
    header = m.per_peer()
    _, updates = router(m.route_monitoring(header, m.update()))
    assert updates == []


def test_add_path_negotiated_in_peer_up_is_decoded() -> None:
    header = m.per_peer()
    pdu = m.update(
        attributes=m.origin() + m.as_path(64500, 13335) + m.next_hop("192.0.2.1"),
        announced=m.nlri("203.0.113.0/24", path_id=7) + m.nlri("198.51.100.0/24", path_id=8),
    )
    up = m.peer_up(header, sent_caps=m.add_path(bits=1), received_caps=m.add_path(bits=2))
    r, updates = router(up, m.route_monitoring(header, pdu))
    assert next(iter(r.peers.values())).add_path
    assert [u.prefix for u in updates[1:]] == ["203.0.113.0/24", "198.51.100.0/24"]


def test_attributes_the_fast_decoder_leaves_are_decoded_by_mrtparse() -> None:
    attr_set = m.attribute(128, m.u32(64500) + m.origin(), 0xC0)  # deferred, then dropped
    pdu = m.update(
        attributes=m.origin() + m.as_path(64500, 13335) + m.next_hop("192.0.2.1") + attr_set,
        announced=m.nlri("203.0.113.0/24"),
    )
    _, updates = router(m.route_monitoring(m.per_peer(), pdu))
    assert [(u.prefix, u.as_path, u.source) for u in updates] == [
        ("203.0.113.0/24", (64500, 13335), "bmp")
    ]


@pytest.mark.parametrize(
    "aigp",
    [
        b"\x01" + m.u16(11) + bytes(8),  # a metric TLV
        b"\x01" + m.u16(0) + bytes(8),  # a TLV shorter than its header: discarded (RFC 7311)
    ],
)
def test_aigp_is_discarded_never_decoded_by_mrtparse(aigp: bytes) -> None:
    """mrtparse loops for ever on an AIGP TLV shorter than 3 bytes: a router sending one
    would stop the station."""
    pdu = m.update(
        attributes=m.origin()
        + m.as_path(64500, 13335)
        + m.next_hop("192.0.2.1")
        + m.attribute(26, aigp, 0x80),
        announced=m.nlri("203.0.113.0/24"),
    )
    _, updates = router(m.route_monitoring(m.per_peer(), pdu))
    assert [u.prefix for u in updates] == ["203.0.113.0/24"]


def test_frr_local_as_in_front_of_ebgp_paths_is_removed_ibgp_left_alone() -> None:
    ebgp, ibgp = m.per_peer(), m.per_peer("192.0.2.9", 65010)
    r, updates = router(
        m.peer_up(ebgp, local_asn=65010, peer_asn=64500),
        m.peer_up(ibgp, local_asn=65010, peer_asn=65010),
        m.route_monitoring(ebgp, v4_update(65010, 64500, 13335)),
        m.route_monitoring(ibgp, v4_update(65010, 64500, 13335)),
    )
    announced = [u for u in updates if u.kind == Kind.ANNOUNCE]
    assert [u.as_path for u in announced] == [(64500, 13335), (65010, 64500, 13335)]
    assert r.stats.local_as_removed == 1


@pytest.mark.parametrize(
    ("message", "code", "words"),
    [
        (m.bmp(0, m.per_peer()[:30]), "malformed-bmp", "too short"),
        (m.route_monitoring(m.per_peer(), b"\x00" * 23), "malformed-bmp", "marker"),
        (
            m.route_monitoring(m.per_peer(), m.MARKER + m.u16(200) + b"\x02" + bytes(4)),
            "malformed-bmp",
            "does not fit",
        ),
        (
            m.route_monitoring(m.per_peer(), v4_update(64500, 13335) + b"\x00"),
            "malformed-bmp",
            "after the BGP UPDATE",
        ),
        (
            m.route_monitoring(m.per_peer(), m.bgp(4, b"")),  # a KEEPALIVE is no route
            "malformed-bmp",
            "type 4",
        ),
        (
            m.route_monitoring(  # an AS_PATH segment longer than its attribute
                m.per_peer(),
                m.update(
                    attributes=m.origin() + m.attribute(2, b"\x02\x09" + m.u32(64500)),
                    announced=m.nlri("203.0.113.0/24"),
                ),
            ),
            "malformed-bmp",
            "route monitoring of 192.0.2.1",
        ),
        (m.bmp(9, b"\x00" * 10), "unsupported-bmp", "type 9"),
        (m.route_monitoring(m.per_peer(peer_type=7), m.update()), "unsupported-bmp", "peer type 7"),
        (m.peer_down(m.per_peer(), reason=1, data=b"\x00" * 5), "malformed-bmp", "NOTIFICATION"),
        (m.bmp(3, m.per_peer() + bytes(20) + b"\xff" * 10), "malformed-bmp", "sent OPEN"),
        (
            m.statistics(m.per_peer(), m.tlv(0, m.u32(3)), count=2),
            "malformed-bmp",
            "announces 2 counters",
        ),
        (m.statistics(m.per_peer(), m.tlv(7, b"\x00" * 3)), "malformed-bmp", "3 bytes"),
    ],
)
def test_malformed_messages(message: bytes, code: str, words: str) -> None:
    r = bmp.Router("198.51.100.7")
    with pytest.raises(Malformed) as caught:
        r.handle(message)
    assert not isinstance(caught.value, bmp.FramingLost)
    assert caught.value.code == code
    assert words in caught.value.message
    # the router goes on: the next message is handled as usual
    assert r.handle(m.peer_up(m.per_peer()))[0].kind == Kind.PEER_UP


# -- statistics -------------------------------------------------------------------------


def test_statistics_report_counters() -> None:
    header = m.per_peer()
    r, updates = router(
        m.initiation(),
        m.statistics(
            header,
            m.tlv(0, m.u32(3)),
            m.tlv(7, (1234).to_bytes(8, "big")),
            m.tlv(9, m.u16(1) + b"\x01" + (1000).to_bytes(8, "big")),
            m.tlv(9, m.u16(2) + b"\x01" + (234).to_bytes(8, "big")),
        ),
    )
    assert updates == []
    assert r.stats.reports["r1|192.0.2.1"] == {
        "rejected-prefixes": 3,
        "adj-rib-in-routes": 1234,
        "adj-rib-in-routes-per-afi-safi": {"1/1": 1000, "2/1": 234},
    }


# -- the bytes Debian's FRR 8.4 sent ----------------------------------------------------


def test_debian_frr_8_4_session() -> None:
    """Initiation, a stale Peer Down, Peer Up, then pre- and post-policy monitoring of
    announcements (45.65.12.0/24 from AS13335, 198.51.100.0/24 with NO_EXPORT and a
    4-byte ASN) and a withdrawal. FRR 8.4 prepends its own AS65010 to the paths
    (removed), and without `soft-reconfiguration inbound` its pre-policy messages are
    withdrawals (FRRouting/frr#10240): what it sent, published as it came."""
    data = (DATA / "frr-8.4-bmp.bin").read_bytes()
    r = bmp.Router("10.209.0.4")
    updates: list[Update] = []
    at = 0
    while at < len(data):
        length, _ = bmp.parse_header(data[at : at + 6])
        updates.extend(r.handle(data[at : at + length]))
        at += length
    assert r.name == "bgpo-frr"
    assert r.sys_descr.startswith("FRRouting 8.4")
    announced = {(u.collector, u.prefix, u.as_path) for u in updates if u.kind == Kind.ANNOUNCE}
    assert announced == {
        ("bgpo-frr/post-policy", "45.65.12.0/24", (200100, 174, 13335)),
        ("bgpo-frr/post-policy", "198.51.100.0/24", (200100, 4200000001)),
    }
    assert [u.kind for u in updates[:2]] == [Kind.PEER_DOWN, Kind.PEER_UP]
    assert {u.peer_address for u in updates} == {"10.209.0.3"}
    assert r.stats.local_as_removed == 2


def test_route_mirroring_is_counted_not_published() -> None:
    mirrored = m.bmp(6, m.per_peer() + m.tlv(0, v4_update(64500, 13335)))
    r, updates = router(mirrored)
    assert updates == []
    assert r.stats.messages == {"route-mirroring": 1}


def test_loc_rib_with_its_table_name_and_its_peer_down() -> None:
    header = m.per_peer("0.0.0.0", 65010, peer_type=3, bgp_id="10.0.0.254")
    up = m.peer_up(header, tlvs=m.tlv(3, b"default"))  # RFC 9069 VRF/Table Name TLV
    down = m.peer_down(header, reason=6, data=m.tlv(3, b"default"))
    r, updates = router(m.initiation(), up, down)
    assert [(u.kind, u.collector) for u in updates] == [
        (Kind.PEER_UP, "r1/loc-rib"),
        (Kind.PEER_DOWN, "r1/loc-rib"),
    ]
    assert not r.peers


@pytest.mark.timeout(120)
def test_mutated_messages_give_updates_or_malformed_never_anything_else() -> None:
    """Every message type, mutated at random (bytes changed, dropped, inserted; the
    length kept right): each one decodes or raises Malformed, in bounded time (this
    is how mrtparse's endless loop on AIGP was found)."""
    import random

    peer, v6 = m.per_peer(), m.per_peer("2001:db8::1", 64501)
    seeds = [
        m.initiation(),
        m.termination(),
        m.peer_up(peer, sent_caps=m.add_path(bits=1), received_caps=m.add_path(bits=2)),
        m.peer_down(peer, 1, m.bgp(3, b"\x06\x02")),
        m.route_monitoring(peer, v4_update(64500, 13335)),
        m.route_monitoring(
            v6,
            m.update(
                attributes=m.origin()
                + m.as_path(64501, 64777)
                + m.mp_reach_v6("2001:db8::1", "2a0b:4e00::/32")
                + m.mp_unreach_v6("2001:db8:1::/48")
                + m.attribute(26, b"\x01" + m.u16(11) + bytes(8), 0x80)
            ),
        ),
        m.statistics(peer, m.tlv(0, m.u32(3)), m.tlv(9, m.u16(1) + b"\x01" + bytes(8))),
        m.route_monitoring(m.per_peer("0.0.0.0", 1, peer_type=3), v4_update(1, 2)),
    ]
    rng = random.Random(7)
    outcomes = {"updates": 0, "malformed": 0}
    for _ in range(4000):
        message = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.6:
                message[rng.randrange(6, len(message))] = rng.randrange(256)
            elif op < 0.8:
                del message[rng.randrange(6, len(message))]
            else:
                message.insert(rng.randrange(6, len(message) + 1), rng.randrange(256))
        message[1:5] = len(message).to_bytes(4, "big")
        r = bmp.Router("x")
        r.handle(seeds[2])  # the peer is up, with ADD-PATH, for some of them
        try:
            r.handle(bytes(message))
            outcomes["updates"] += 1
        except Malformed:
            outcomes["malformed"] += 1
    assert outcomes["updates"] and outcomes["malformed"]
