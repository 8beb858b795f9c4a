"""The bogon detectors' fast paths never skip a real bogon.

They are derived from the tables in ``reference/bogons.py``; these tests drive
the detectors themselves with every table entry, its boundaries and each /8,
and compare with the full (slow) checks.
"""

from itertools import pairwise

from bgp_orchestrator.bgp.prefix import Net, format_net
from bgp_orchestrator.bgp.update import AsPath, Kind, Update
from bgp_orchestrator.detection.batch import prepare
from bgp_orchestrator.detection.detectors.bogons import bogon_asn_in_path, bogon_prefix_announced
from bgp_orchestrator.detection.reference import Reference
from bgp_orchestrator.detection.state import DetectorState
from bgp_orchestrator.reference.bogons import (
    _V4,
    _V6,
    _V6_ALLOWED,
    BOGON_ASN_RANGES,
    IPV6_GLOBAL,
    bogon_asn,
    bogon_asn_spans,
    bogon_prefix,
    v4_bogon_first_octets,
    v6_clean_first_hextets,
)

ASN_MAX = 2**32 - 1


def _net(address: int, length: int) -> Net:
    mask = ((1 << length) - 1) << (32 - length)
    return Net(4, address & mask, length)


def _v4_samples() -> set[Net]:
    nets: set[Net] = set()
    for block in _V4:
        first = block.value
        last = block.value | ((1 << (32 - block.length)) - 1)
        nets.add(block)
        for address in (first, last, first - 1, last + 1):
            if 0 <= address < 2**32:
                for length in (8, 16, 24, 32, block.length, block.length + 1):
                    if 0 <= length <= 32:
                        nets.add(_net(address, length))
    for octet in range(256):
        for address in (octet << 24, (octet << 24) | 0xFFFFFF):
            for length in (1, 7, 8, 9, 12, 16, 24, 32):
                nets.add(_net(address, length))
    return nets


def _net6(address: int, length: int) -> Net:
    mask = ((1 << length) - 1) << (128 - length)
    return Net(6, address & mask, length)


def _v6_samples() -> set[Net]:
    """Every /16 (and a /48 in each), plus each block's edges at lengths around it."""
    nets: set[Net] = set()
    for hextet in range(1 << 16):
        nets.add(_net6(hextet << 112, 16))
        nets.add(_net6((hextet << 112) | (1 << 80), 48))
    for block in (*_V6, *_V6_ALLOWED, IPV6_GLOBAL):
        first = block.value
        last = block.value | ((1 << (128 - block.length)) - 1)
        nets.add(block)
        for address in (first, last, first - 1, last + 1):
            if 0 <= address < 2**128:
                for length in (3, 15, 16, 17, 32, 48, 64, 128, block.length, block.length + 1):
                    if 0 <= length <= 128:
                        nets.add(_net6(address, length))
    return nets


def _announce(prefix: str, path: AsPath) -> Update:
    return Update(Kind.ANNOUNCE, 1.0, "10.0.0.1", 3356, prefix, path)


def test_bogon_prefix_fast_path_skips_no_bogon() -> None:
    nets = _v4_samples()
    ref = Reference()  # no tenants: every bogon is one global observation
    batch = prepare([_announce(format_net(n), (3356, 13335)) for n in nets], ref, [])
    flagged = {c.prefix: c.detail_key for c in bogon_prefix_announced(batch, ref, DetectorState())}
    bogons = {format_net(n): bogon_prefix(n) for n in nets if bogon_prefix(n) is not None}
    assert flagged == bogons
    assert len(bogons) > 100  # the samples do reach into every block


def test_bogon_prefix_v6_fast_path_skips_no_bogon() -> None:
    nets = _v6_samples()
    ref = Reference()
    batch = prepare([_announce(format_net(n), (3356, 13335)) for n in nets], ref, [])
    flagged = {c.prefix: c.detail_key for c in bogon_prefix_announced(batch, ref, DetectorState())}
    bogons = {format_net(n): bogon_prefix(n) for n in nets if bogon_prefix(n) is not None}
    assert flagged == bogons
    assert {"2001:db8::/32", "3ffe::/16", "2002::/16", "outside 2000::/3"} <= set(bogons.values())


def test_the_v6_fast_path_is_a_fast_path() -> None:
    """Global-unicast /16s away from the bogon blocks are skipped without the full check."""
    hextets = v6_clean_first_hextets()
    assert {0x2003, 0x2400, 0x2600, 0x2A00, 0x2C0F} <= hextets
    assert not {0x2001, 0x2002, 0x3FFE, 0x3FFF, 0x1FFF, 0x4000, 0xFE80} & hextets


def test_the_prefix_fast_path_is_a_fast_path() -> None:
    """Octets of the public space are skipped without the full check."""
    octets = v4_bogon_first_octets()
    for block in _V4:
        assert block.value >> 24 in octets
    assert not {1, 8, 45, 91, 185, 223} & octets


def _asn_samples() -> set[int]:
    samples = {1, 174, 3356, 15169, 64495, 131072, 4199999999}
    for first, last, _ in BOGON_ASN_RANGES:
        for asn in (first - 1, first, first + 1, (first + last) // 2, last - 1, last, last + 1):
            if 0 <= asn <= ASN_MAX:
                samples.add(asn)
    return samples


def _naive_reason(asn: int) -> str | None:
    return next((reason for first, last, reason in BOGON_ASN_RANGES if first <= asn <= last), None)


def test_bogon_asn_matches_the_table_at_every_boundary() -> None:
    for asn in _asn_samples():
        assert bogon_asn(asn) == _naive_reason(asn), asn


def test_bogon_asn_fast_path_skips_no_bogon_in_sequences_and_sets() -> None:
    samples = sorted(_asn_samples())
    ref = Reference()
    updates = []
    for i, asn in enumerate(samples):
        updates.append(_announce(f"45.{i // 256}.{i % 256}.0/24", (3356, asn, 13335)))
        updates.append(_announce(f"46.{i // 256}.{i % 256}.0/24", (3356, 1299, (13335, asn))))
    batch = prepare(updates, ref, [])
    flagged = {
        (c.prefix, c.detail_key, c.details["reason"])
        for c in bogon_asn_in_path(batch, ref, DetectorState())
    }
    expected = set()
    for i, asn in enumerate(samples):
        reason = _naive_reason(asn)
        if reason is not None:
            expected.add((f"45.{i // 256}.{i % 256}.0/24", str(asn), reason))
            expected.add((f"46.{i // 256}.{i % 256}.0/24", str(asn), reason))
    assert flagged == expected
    assert len(expected) >= 2 * len(BOGON_ASN_RANGES)


def test_asn_spans_cover_exactly_the_ranges() -> None:
    firsts, lasts = bogon_asn_spans()
    spans = list(zip(firsts, lasts, strict=True))
    assert all(first <= last for first, last in spans)
    assert all(a[1] + 1 < b[0] for a, b in pairwise(spans))  # disjoint
    covered = sum(last - first + 1 for first, last in spans)
    assert covered == sum(last - first + 1 for first, last, _ in BOGON_ASN_RANGES)
