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
from typing import Any

import msgpack  # type: ignore[import-untyped]

from bgp_orchestrator.bgp.parsers.common import Malformed
from bgp_orchestrator.bgp.update import Kind, Update

VERSION = 1
_FIELDS = len(Update._fields)


def _plain(update: Update) -> list[Any]:
    row = list(update)
    row[0] = int(update.kind)
    return row


def encode_batch(updates: Sequence[Update]) -> bytes:
    data: bytes = msgpack.packb([VERSION, [_plain(u) for u in updates]], use_bin_type=True)
    return data


def decode_batch(data: bytes) -> list[Update]:
    """The updates of one record; Malformed if the record is not a batch we wrote."""
    try:
        version, rows = msgpack.unpackb(data, use_list=False, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise Malformed("malformed-record", f"not a msgpack update batch: {exc}") from None
    if version != VERSION:
        raise Malformed("unknown-record-version", f"record format version {version!r}")
    try:
        out = []
        new = Update.__new__
        for row in rows:
            if len(row) != _FIELDS:
                raise Malformed("malformed-record", f"update row has {len(row)} fields")
            out.append(new(Update, *row))
        return out
    except TypeError as exc:
        raise Malformed("malformed-record", f"bad update row: {exc}") from None


def is_route(update: Update) -> bool:
    return update.kind in (Kind.ANNOUNCE, Kind.WITHDRAW)


def split_by_partition(updates: Iterable[Update], partitions: int) -> dict[int, list[Update]]:
    """Group updates per partition; session events are copied to every partition."""
    from bgp_orchestrator.bgp.prefix import partition_for

    groups: dict[int, list[Update]] = {}
    for update in updates:
        if update.prefix:
            groups.setdefault(partition_for(update.prefix, partitions), []).append(update)
        else:
            for p in range(partitions):
                groups.setdefault(p, []).append(update)
    return groups
