"""What a run lost, duplicated and missed.

Updates: the log (the topic's records between the offsets before and after the
run, decoded) against what the replay published, and against the positions the
consumer groups committed. Conflicts: the stored rows and their outbox events
against the labelled expectation of the replay's incidents.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bgp_orchestrator.bgp import codec
from bgp_orchestrator.bgp.update import Update
from bgp_orchestrator.detection.scenario import Expected

Ranges = dict[int, tuple[int, int]]
log = logging.getLogger(__name__)


class LogReader:
    """Offsets and records of one topic, and the offsets groups committed on it.

    Each call opens its own short-lived client, so a reader outlives a broker
    restart."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic

    async def _consumer(self, group: str | None = None) -> Any:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            request_timeout_ms=5000,
            metadata_max_age_ms=1000,
        )
        await consumer.start()
        return consumer

    async def _partitions(self, consumer: Any) -> list[Any]:
        from aiokafka import TopicPartition

        await consumer.topics()
        return [
            TopicPartition(self.topic, p)
            for p in sorted(consumer.partitions_for_topic(self.topic) or ())
        ]

    async def ends(self) -> dict[int, int]:
        consumer = await self._consumer()
        try:
            tps = await self._partitions(consumer)
            ends = await consumer.end_offsets(tps) if tps else {}
            return {tp.partition: int(o) for tp, o in ends.items()}
        finally:
            await consumer.stop()

    async def committed(self, group: str) -> dict[int, int]:
        """The group's committed offset per partition (0 where it committed none)."""
        consumer = await self._consumer(group)
        try:
            out = {}
            for tp in await self._partitions(consumer):
                out[tp.partition] = int(await consumer.committed(tp) or 0)
            return out
        finally:
            await consumer.stop()

    async def read(self, ranges: Ranges, timeout_s: float = 60.0) -> list[Update]:
        """Every update of the records in ``ranges`` (partition -> [start, end))."""
        from aiokafka import TopicPartition

        wanted = {p: r for p, r in ranges.items() if r[1] > r[0]}
        if not wanted:
            return []
        consumer = await self._consumer()
        out: list[Update] = []
        try:
            tps = {p: TopicPartition(self.topic, p) for p in wanted}
            consumer.assign(list(tps.values()))
            for p, tp in tps.items():
                consumer.seek(tp, wanted[p][0])
            pending = set(wanted)
            deadline = time.monotonic() + timeout_s
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not read partitions {sorted(pending)} of {self.topic}"
                    )
                batches = await consumer.getmany(*[tps[p] for p in pending], timeout_ms=1000)
                for tp, records in batches.items():
                    end = wanted[tp.partition][1]
                    for record in records:
                        if record.offset < end and record.value is not None:
                            out.extend(codec.decode_batch(record.value))
                    if records and records[-1].offset >= end - 1:
                        pending.discard(tp.partition)
                for p in list(pending):
                    if await consumer.position(tps[p]) >= wanted[p][1]:
                        pending.discard(p)
            return out
        finally:
            await consumer.stop()


def log_updates(chunk: Iterable[Update], partitions: int) -> int:
    """How many updates a published chunk puts in the log (session events go to every
    partition, so they count once per partition)."""
    return sum(len(batch) for batch in codec.split_by_partition(chunk, partitions).values())


def behind(committed: dict[int, int], target: dict[int, int]) -> Ranges:
    """The records of ``target`` not yet committed: partition -> [committed, target)."""
    return {p: (committed.get(p, 0), end) for p, end in target.items() if committed.get(p, 0) < end}


async def wait_caught_up(
    reader: LogReader, groups: Sequence[str], target: dict[int, int], timeout_s: float
) -> float | None:
    """Seconds until every group committed ``target`` on every partition (None: not
    within ``timeout_s``). Errors while a service is still away count as not yet."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            lagging = False
            for group in groups:
                if behind(await reader.committed(group), target):
                    lagging = True
                    break
            if not lagging:
                return time.monotonic() - started
        except Exception as exc:  # the broker is still coming back: not caught up yet
            log.debug("offsets not readable yet: %s", exc)
        await asyncio.sleep(0.5)
    return None


# --- conflicts --------------------------------------------------------------------------


@dataclass
class ConflictOutcome:
    expected: int
    missed: list[Expected] = field(default_factory=list)
    #: rows beyond one per expected conflict, plus opened/reopened events beyond one
    #: per conflict (a conflict raised again after a replay)
    duplicates: int = 0
    duplicate_detail: list[str] = field(default_factory=list)


def _row_expected(row: asyncpg.Record, back: dict[int, int]) -> Expected:
    tenant = back.get(row["tenant_id"], row["tenant_id"]) if row["tenant_id"] else None
    return Expected(
        row["type"], tenant, row["prefix"], row["origin_asn"], row["detail_key"], row["severity"]
    )


async def compare_conflicts(
    conn: asyncpg.Connection, expected: list[Expected], tenant_ids: dict[int, int]
) -> ConflictOutcome:
    """Stored conflicts of the expected prefixes against the expectation."""
    back = {v: k for k, v in tenant_ids.items()}
    prefixes = sorted({e.prefix for e in expected})
    rows = await conn.fetch(
        "SELECT id, type, tenant_id, prefix::text AS prefix, origin_asn, detail_key, severity, "
        "state FROM conflicts WHERE prefix = ANY($1::cidr[])",
        prefixes,
    )
    events = await conn.fetch(
        "SELECT conflict_id, event, count(*) AS n FROM conflict_events "
        "WHERE conflict_id = ANY($1::bigint[]) GROUP BY conflict_id, event",
        [r["id"] for r in rows],
    )
    per_conflict: dict[int, dict[str, int]] = {}
    for e in events:
        per_conflict.setdefault(e["conflict_id"], {})[e["event"]] = int(e["n"])
    stored = [(r, _row_expected(r, back)) for r in rows]
    outcome = ConflictOutcome(expected=len(expected))
    opens_counted: set[int] = set()
    for want in expected:
        probe = Expected(
            want.type, want.tenant_id, want.prefix, want.origin_asn, want.detail_key, want.severity
        )
        matched = [r for r, got in stored if probe.matches(got)]
        if want.resolved:
            if not any(
                r["state"] == "resolved" or per_conflict.get(r["id"], {}).get("resolved")
                for r in matched
            ):
                outcome.missed.append(want)
            continue
        if not matched:
            outcome.missed.append(want)
            continue
        if len(matched) > 1:
            outcome.duplicates += len(matched) - 1
            outcome.duplicate_detail.append(f"{len(matched)} rows for {want}")
        for r in matched:
            if r["id"] in opens_counted:
                continue
            opens_counted.add(r["id"])
            counts = per_conflict.get(r["id"], {})
            opens = counts.get("opened", 0) + counts.get("reopened", 0)
            if opens > 1:
                outcome.duplicates += opens - 1
                outcome.duplicate_detail.append(f"{opens} opened/reopened events for {want}")
    return outcome


# --- session stats -----------------------------------------------------------------------


@dataclass
class WindowOutcome:
    windows: int = 0
    #: announcements and withdrawals of the replay missing from the stored windows
    lost: int = 0
    #: counted more often than they were published
    counted_twice: int = 0
    missing_windows: list[int] = field(default_factory=list)
    #: window start -> (published, stored)
    per_window: dict[int, tuple[int, int | None]] = field(default_factory=dict)


_COMPACTED = re.compile(r"^compact-(\d+)-(\d+)-(.+)\.parquet$")


def stored_window_counts(
    folder: Path, starts: Iterable[int], sessions: set[str], window_s: int = 300
) -> dict[int, int]:
    """Announcements + withdrawals of ``sessions`` in the stored windows: the window's
    own files (one per merge partition), or, once compacted, its rows (those with
    ``event_timestamp`` at the window's end) of the compacted file covering it; a
    writer's window is read from one of the two, never both, so a compaction under
    way does not count it twice."""
    import pandas as pd

    columns = ["session_id", "announcements", "withdrawals"]
    compacted = [
        (int(m.group(1)), int(m.group(2)), m.group(3), path)
        for path in folder.glob("compact-*.parquet")
        if (m := _COMPACTED.match(path.name))
    ]
    out: dict[int, int] = {}
    for start in starts:
        end = pd.Timestamp(start + window_s, unit="s", tz="UTC")
        total, found = 0, False
        covered: set[str] = set()
        for first, last, writer, path in compacted:
            if first <= start < last:
                frame = pd.read_parquet(path, columns=[*columns, "event_timestamp"])
                stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
                frame = frame[(stamps == end) & frame["session_id"].isin(sessions)]
                total += int(frame["announcements"].sum() + frame["withdrawals"].sum())
                covered.add(writer)
                found = True
        for path in sorted(folder.glob(f"live-{start}-*.parquet")):
            if path.name[len(f"live-{start}-") : -len(".parquet")] in covered:
                continue
            frame = pd.read_parquet(path, columns=columns)
            frame = frame[frame["session_id"].isin(sessions)]
            total += int(frame["announcements"].sum() + frame["withdrawals"].sum())
            found = True
        if found:
            out[start] = total
    return out


async def wait_windows(
    folder: Path,
    expected: dict[int, int],
    sessions: set[str],
    timeout_s: float,
    window_s: int = 300,
) -> WindowOutcome:
    """Wait for every window of the replay to be stored in full, then compare its counts.

    A window is stored as one file per merge partition, written one after the other
    (by different replicas), so the first file of a window is not the window: wait
    until each window counts what was published (or the time is up), not merely
    until each has a file."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await asyncio.to_thread(stored_window_counts, folder, expected, sessions, window_s)
        done = all(got.get(start, -1) >= want for start, want in expected.items())
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    outcome = WindowOutcome(windows=len(expected))
    for start, want in sorted(expected.items()):
        have = got.get(start)
        outcome.per_window[start] = (want, have)
        if have is None:
            outcome.missing_windows.append(start)
            outcome.lost += want
            continue
        outcome.lost += max(0, want - have)
        outcome.counted_twice += max(0, have - want)
    return outcome
