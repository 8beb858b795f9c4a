"""Bogon prefixes (IANA special-purpose registries, RFC 6890) and bogon ASNs."""

from __future__ import annotations

from bisect import bisect_right
from functools import cache

from bgp_orchestrator.bgp.prefix import Net, parse_net

# IPv4 special-purpose address registry (RFC 6890 and updates) plus 0/8,
# multicast and the class E space: none of these belongs in the global table.
IPV4_BOGONS = (
    "0.0.0.0/8",  # "this network", RFC 791
    "10.0.0.0/8",  # private, RFC 1918
    "100.64.0.0/10",  # shared address space, RFC 6598
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # TEST-NET-1, RFC 5737
    "192.88.99.0/24",  # deprecated 6to4 relay anycast, RFC 7526
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking, RFC 2544
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",  # TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved (class E) and limited broadcast
)
# IPv6: everything outside 2000::/3 is not global unicast; inside it, the
# special-purpose blocks of the IPv6 registry.
IPV6_GLOBAL = parse_net("2000::/3")
IPV6_BOGONS = (
    "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, ...), RFC 2928
    "2001:db8::/32",  # documentation, RFC 3849
    "2002::/16",  # 6to4, RFC 3056 (deprecated for new announcements)
    "3ffe::/16",  # former 6bone, RFC 3701
    "3fff::/20",  # documentation, RFC 9637
)

_V4 = tuple(parse_net(p) for p in IPV4_BOGONS)
_V6 = tuple(parse_net(p) for p in IPV6_BOGONS)
# Well-known exceptions inside bogon blocks that are announced on purpose.
_V6_ALLOWED = (parse_net("2001::/32"),)  # Teredo is announced


def _keyed(blocks: tuple[Net, ...], width: int) -> tuple[tuple[int, int, int, str], ...]:
    """(length, shift, network >> shift, text) per block: a prefix lies in the block
    when it is at least that long and its value shifted alike is the same."""
    return tuple(
        (b.length, width - b.length, b.value >> (width - b.length), str(b)) for b in blocks
    )


_V4_KEYED = _keyed(_V4, 32)
_V6_KEYED = _keyed(_V6, 128)
_V6_ALLOWED_KEYED = _keyed(_V6_ALLOWED, 128)


def bogon_prefix(net: Net) -> str | None:
    """The bogon block covering ``net`` (text), or None if it may be announced."""
    afi, value, length = net
    if afi == 4:
        for block_length, shift, key, text in _V4_KEYED:
            if length >= block_length and value >> shift == key:
                return text
        if length < 8:
            return "shorter than /8"
        return None
    if length < 3 or value >> 125 != IPV6_GLOBAL.value >> 125:
        return "outside 2000::/3"
    for block_length, shift, key, _ in _V6_ALLOWED_KEYED:
        if length >= block_length and value >> shift == key:
            return None
    for block_length, shift, key, text in _V6_KEYED:
        if length >= block_length and value >> shift == key:
            return text
    return None


@cache
def v4_bogon_first_octets() -> frozenset[int]:
    """First octets of the addresses inside any IPv4 bogon block.

    An IPv4 prefix of /8 or longer lies inside one /8, so if that /8's octet is
    not in this set no bogon block covers it: the detectors' fast path, derived
    from :data:`IPV4_BOGONS` (computed at first use).
    """
    octets: set[int] = set()
    for block in _V4:
        first = block.value >> 24
        last = (block.value | ((1 << (32 - block.length)) - 1)) >> 24
        octets.update(range(first, last + 1))
    return frozenset(octets)


@cache
def v6_clean_first_hextets() -> frozenset[int]:
    """First 16-bit groups of IPv6 /16-or-longer prefixes that are surely no bogon.

    Such a prefix lies inside one /16; when that /16 is inside 2000::/3 and no
    bogon block (nor an exception to one) touches it, :func:`bogon_prefix` would
    answer None: the detectors' fast path, derived from :data:`IPV6_BOGONS`
    (computed at first use).
    """
    touched: set[int] = set()
    for block in (*_V6, *_V6_ALLOWED):
        first = block.value >> 112
        last = (block.value | ((1 << (128 - block.length)) - 1)) >> 112
        touched.update(range(first, last + 1))
    start = IPV6_GLOBAL.value >> 112
    end = (IPV6_GLOBAL.value | ((1 << (128 - IPV6_GLOBAL.length)) - 1)) >> 112
    return frozenset(h for h in range(start, end + 1) if h not in touched)


# (first, last, reason) of the reserved and special-purpose ASN ranges.
BOGON_ASN_RANGES = (
    (0, 0, "AS0 is reserved (RFC 7607)"),
    (23456, 23456, "AS_TRANS (RFC 6793)"),
    (64496, 64511, "documentation ASN (RFC 5398)"),
    (64512, 65534, "private ASN (RFC 6996)"),
    (65535, 65535, "reserved ASN (RFC 7300)"),
    (65536, 65551, "documentation ASN (RFC 5398)"),
    (65552, 131071, "reserved ASN (IANA)"),
    (4200000000, 4294967294, "private ASN (RFC 6996)"),
    (4294967295, 4294967295, "reserved ASN (RFC 7300)"),
)


#: (firsts, lasts) of the merged bogon ASN ranges, both sorted.
AsnSpans = tuple[tuple[int, ...], tuple[int, ...]]


@cache
def bogon_asn_spans() -> AsnSpans:
    """:data:`BOGON_ASN_RANGES` merged where they touch or overlap: (firsts, lasts), sorted.

    An ASN is a bogon exactly when it lies in one span, so ``bisect`` over the
    firsts decides it in one step (computed at first use).
    """
    spans: list[list[int]] = []
    for first, last, _ in sorted(BOGON_ASN_RANGES):
        if spans and first <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], last)
        else:
            spans.append([first, last])
    return tuple(s[0] for s in spans), tuple(s[1] for s in spans)


def bogon_asn(asn: int) -> str | None:
    """Why ``asn`` must not appear in a public AS path, or None."""
    firsts, lasts = bogon_asn_spans()
    i = bisect_right(firsts, asn)
    if not i or asn > lasts[i - 1]:
        return None
    for first, last, reason in BOGON_ASN_RANGES:
        if first <= asn <= last:
            return reason
    return None
