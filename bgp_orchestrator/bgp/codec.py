"""The wire format of ``bgp.updates``: msgpack batches of updates, one partition each.

A Kafka record carries up to a few hundred updates for one partition, so the
per-record cost of Kafka is paid once per batch, not once per prefix. The
partition is chosen from the prefix's covering bucket (see
:func:`bgp_orchestrator.bgp.prefix.partition_for`), so a prefix and its
more-specifics always meet the same detector; session up/down events go to
every partition, because every partition holds routes of that session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

import msgpack  # type: ignore[import-untyped]

from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update

VERSION = 1
_MAKE = partial(tuple.__new__, Update)
_FIELDS = len(Update._fields)
_BATCH_HEAD = b"\x92" + msgpack.packb(VERSION)  # a 2-array: the version, then the rows


def encode_batch(updates: Sequence[Update]) -> bytes:
    """``[VERSION, [row, ...]]``: each row the update's fields in order, ``kind`` as its
    integer (msgpack writes an IntEnum as the int and a tuple as an array, so the
    updates are packed as they are, in C, with no copy per update)."""
    data: bytes = msgpack.packb(
        [VERSION, updates if isinstance(updates, list) else list(updates)], use_bin_type=True
    )
    return data


def encode_rows(updates: Sequence[Update]) -> memoryview:
    """The rows of ``updates`` as they appear inside a batch, without the batch's
    framing: a fragment for :func:`join_rows`. Encoding each chunk of updates right
    after it was parsed, while its objects are still in the CPU's caches, costs a
    third of encoding them later, and a fragment holds far less memory than the
    update objects."""
    packed: bytes = msgpack.packb(
        updates if isinstance(updates, list) else list(updates), use_bin_type=True
    )
    first = packed[0]  # the array's header: fixarray 0x9N, array 16 0xDC, array 32 0xDD
    return memoryview(packed)[1 if first & 0xF0 == 0x90 else 3 if first == 0xDC else 5 :]


def join_rows(count: int, fragments: Iterable[bytes | memoryview]) -> bytes:
    """One record from fragments of ``count`` rows in all: byte for byte what
    :func:`encode_batch` writes for the same updates."""
    if count < 16:
        header = bytes((0x90 | count,))
    elif count < 0x10000:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    return b"".join([_BATCH_HEAD, header, *fragments])


def decode_batch(data: bytes) -> list[Update]:
    """The updates of one record; Malformed if the record is not a batch we wrote."""
    try:
        version, rows = msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise Malformed("malformed-record", f"not a msgpack update batch: {exc}") from None
    if version != VERSION:
        raise Malformed("unknown-record-version", f"record format version {version!r}")
    try:
        lengths = set(map(len, rows))
    except TypeError as exc:
        raise Malformed("malformed-record", f"bad update row: {exc}") from None
    if lengths - {_FIELDS}:
        bad = min(lengths - {_FIELDS})
        raise Malformed("malformed-record", f"update row has {bad} fields")
    # tuple.__new__ directly, mapped in C: the NamedTuple's own __new__ is a Python
    # function call per row.
    return list(map(_MAKE, rows))


def is_route(update: Update) -> bool:
    return update.kind in (Kind.ANNOUNCE, Kind.WITHDRAW)


def split_by_partition(updates: Iterable[Update], partitions: int) -> dict[int, list[Update]]:
    """Group updates per partition; session events are copied to every partition."""
    from bgp_orchestrator.bgp.prefix import Partitioner

    partition_of = Partitioner(partitions)
    groups: dict[int, list[Update]] = {}
    for update in updates:
        if update.prefix:
            groups.setdefault(partition_of(update.prefix), []).append(update)
        else:
            for p in range(partitions):
                groups.setdefault(p, []).append(update)
    return groups
