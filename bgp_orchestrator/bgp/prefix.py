"""Fast prefix arithmetic on integers, and the covering-bucket partition key.

The detectors see millions of prefixes per second; ``ipaddress`` objects cost
microseconds each, so prefixes are handled as ``(afi, network_int, length)``.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from bgp_orchestrator.bgp.recent import Recent

_INET = socket.AF_INET
_INET6 = socket.AF_INET6
_new = tuple.__new__  # a NamedTuple without its keyword-handling constructor

# A prefix and all its more-specifics land in the same bucket (hence the same
# Kafka partition and detector): the covering /16 (IPv4) or /32 (IPv6), or
# the prefix itself when it is shorter than that.
BUCKET_LENGTH = {4: 16, 6: 32}
WIDTH = {4: 32, 6: 128}


class Net(NamedTuple):
    afi: int
    value: int
    length: int

    def __str__(self) -> str:
        return format_net(self)


def parse_net(text: str) -> Net:
    """``"192.0.2.0/24"`` -> Net(4, 3221225984, 24). Raises ValueError if invalid.

    Host bits must be zero. Much faster than ``ipaddress.ip_network``.
    """
    address, sep, length_text = text.partition("/")
    if not sep or not length_text.isdigit() or len(length_text) > 3:
        raise ValueError(f"invalid prefix {text!r}")
    length = int(length_text)
    try:
        if ":" in address:
            value = int.from_bytes(socket.inet_pton(_INET6, address), "big")
            afi, width = 6, 128
        else:
            value = int.from_bytes(socket.inet_pton(_INET, address), "big")
            afi, width = 4, 32
    except OSError:
        raise ValueError(f"invalid prefix {text!r}") from None
    if length > width:
        raise ValueError(f"invalid prefix length in {text!r}")
    if value & ((1 << (width - length)) - 1):
        raise ValueError(f"host bits set in {text!r}")
    return _new(Net, (afi, value, length))


def parse_canonical(text: str) -> tuple[Net, str]:
    """:func:`parse_net` and :func:`format_net` of its result in one go. An IPv4
    address ``inet_pton`` accepts is already canonical (four decimal octets, no
    leading zeros), so only its length is written again; IPv6 is formatted."""
    net = parse_net(text)
    if net.afi == 4:
        address = text.partition("/")[0]
        return net, f"{address}/{net.length}"
    return net, format_net(net)


def format_net(net: Net) -> str:
    if net.afi == 4:
        return f"{socket.inet_ntop(_INET, net.value.to_bytes(4, 'big'))}/{net.length}"
    return f"{socket.inet_ntop(_INET6, net.value.to_bytes(16, 'big'))}/{net.length}"


def truncate(net: Net, length: int) -> Net:
    """The covering prefix of ``net`` with the given (shorter) length."""
    shift = WIDTH[net.afi] - length
    return Net(net.afi, (net.value >> shift) << shift, length)


def covers(outer: Net, inner: Net) -> bool:
    if outer.afi != inner.afi or outer.length > inner.length:
        return False
    return truncate(inner, outer.length).value == outer.value


def bucket(net: Net) -> Net:
    """The partition bucket of a prefix (see BUCKET_LENGTH)."""
    length = BUCKET_LENGTH[net.afi]
    return net if net.length <= length else truncate(net, length)


def bucket_of(text: str) -> str:
    """Bucket key of a prefix in text form (used by producers)."""
    return format_net(bucket(parse_net(text)))


def _bucket_hash(net: Net) -> int:
    """CRC-32 of the bucket's (value, afi, length): :func:`bucket` without building it."""
    afi, value, length = net
    bucket_length = BUCKET_LENGTH[afi]
    if length > bucket_length:
        shift = WIDTH[afi] - bucket_length
        value = (value >> shift) << shift
        length = bucket_length
    return zlib.crc32(value.to_bytes(16, "big") + bytes((afi, length)))


#: Canonical prefix texts seen recently -> the hash of their bucket (the partition key).
#: The parsers fill it when they first see a prefix (they parsed it anyway), so the
#: publisher rarely parses a prefix again.
_bucket_hashes: Recent[str, int] = Recent(1 << 20)  # as the parsers' prefix cache


def remember_bucket(text: str, net: Net) -> None:
    """Note the bucket hash of a prefix a parser just parsed (``text`` its canonical form)."""
    _bucket_hashes.remember(text, _bucket_hash(net))


def bucket_hash(prefix_text: str) -> int:
    """A stable hash of the prefix's bucket (CRC-32 of its value, AFI and length)."""
    value = _bucket_hashes.recall(prefix_text)
    if value is None:
        value = _bucket_hash(parse_net(prefix_text))
        _bucket_hashes.remember(prefix_text, value)
    return value


def partition_for(prefix_text: str, partitions: int) -> int:
    """The Kafka partition of a prefix: a stable hash of its bucket."""
    return bucket_hash(prefix_text) % partitions


class Partitioner:
    """:func:`partition_for` for a number of partitions, for hot loops: they read
    ``self.hashes.young.get(prefix)`` (a dictionary lookup; the parsers filled it) and
    call the partitioner only when that misses."""

    __slots__ = ("hashes", "partitions")

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.hashes = _bucket_hashes

    def __call__(self, prefix_text: str) -> int:
        return bucket_hash(prefix_text) % self.partitions


def supernets(net: Net, lengths: tuple[int, ...]) -> Iterator[Net]:
    """``net`` truncated to each of ``lengths`` that is not longer than it."""
    for length in lengths:
        if length <= net.length:
            yield truncate(net, length)
