"""Per-partition progress of a consumer group: lag, last progress, stalls.

A partition *progresses* when its committed offset moves: its work up to
there is durably stored (or when a processor that commits late, e.g. after a
window closed, stored its state up to a newer offset in a checkpoint). It is
*stalled* when it has lag (records after the committed offset) and has not
progressed for ``stall_after_s``. The loop
keeps one :class:`PartitionProgress` per assigned partition (its health check
and metrics read them) and publishes them to Redis through
:class:`ProgressStore`, where ``bgpo status`` reads them beside the group's
committed offsets in Kafka; a consumer that died publishes nothing more, so
its partitions turn stalled there too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)


@dataclass
class PartitionProgress:
    partition: int
    #: next offset the worker will process (what it has read, in memory)
    position: int | None = None
    #: next offset after the last commit (its work is stored)
    committed: int | None = None
    #: the log's end as last seen by the consumer (None: not known yet)
    highwater: int | None = None
    #: "loading" (state being restored, paused), "running", "paused" (back-pressure)
    state: str = "loading"
    #: next offset after the last checkpoint that holds the work without a commit
    stored: int | None = None
    #: wall-clock time of the last progress (assignment counts as progress)
    progress_at: float = field(default_factory=time.time)

    @property
    def lag(self) -> int:
        """Records after the committed offset (0 when unknown)."""
        if self.highwater is None:
            return 0
        start = self.committed if self.committed is not None else (self.position or 0)
        return max(0, self.highwater - start)

    def since_progress(self, now: float | None = None) -> float:
        return max(0.0, (now or time.time()) - self.progress_at)

    def stalled(self, stall_after_s: float, now: float | None = None) -> bool:
        return self.lag > 0 and self.since_progress(now) > stall_after_s

    def saw_end(self, end: int | None, now: float | None = None) -> None:
        """The log's end as the consumer now sees it. A partition that was caught up
        starts its stall clock now: records arriving on a partition idle for longer
        than the stall time (its last commit long ago) are not a stall the moment
        they arrive, e.g. while an outage pauses the worker."""
        if self.lag == 0:
            self.progress_at = now or time.time()
        self.highwater = end

    def stored_to(self, offset: int, now: float | None = None) -> None:
        """The work up to ``offset`` is durably stored without a commit (a checkpoint
        of state that still holds records, e.g. the open window of session stats, which
        commits only once the window closed): progress, though the lag remains."""
        if self.stored is None or offset > self.stored:
            self.stored = offset
            self.progress_at = now or time.time()

    def committed_to(self, offset: int, now: float | None = None) -> None:
        if self.committed is None or offset > self.committed:
            self.committed = offset
            self.progress_at = now or time.time()

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["lag"] = self.lag
        out["since_progress_s"] = round(self.since_progress(now), 1)
        return out


def stall_report(progress: PartitionProgress, now: float | None = None) -> str:
    return (
        f"partition {progress.partition} is stalled: {progress.lag:,} records after the "
        f"committed offset {progress.committed} and no progress for "
        f"{progress.since_progress(now):.0f}s ({progress.state})"
    )


@dataclass(frozen=True)
class PublishedProgress:
    """What a consumer last published for one partition (see :class:`ProgressStore`)."""

    partition: int
    committed: int | None
    highwater: int | None
    progress_at: float
    seen_at: float
    owner: str
    state: str
    #: when the consumer last found this partition's log reset (the broker lost it)
    reset_at: float | None = None
    #: the dependency failure the consumer is waiting out (None: none)
    outage: str | None = None


class ProgressStore:
    """Partition progress in Redis: one hash per group and topic, a field per partition.

    Publishing is best effort (Redis down must not stop consumption); the
    caller is told whether it worked, to log a failure once.
    """

    def __init__(self, client: Any, group: str, topic: str) -> None:
        self.client = client
        self.key = progress_key(group, topic)

    async def publish(
        self,
        owner: str,
        partitions: list[PartitionProgress],
        note: str | None = None,
        resets: dict[int, float] | None = None,
    ) -> None:
        """Publish the partitions' progress; ``note`` (e.g. an outage) is added to their
        state, ``resets`` (partition -> time) names the last log reset seen on each."""
        if not partitions:
            return
        now = time.time()
        mapping = {
            str(p.partition): orjson.dumps(
                {
                    "committed": p.committed,
                    "highwater": p.highwater,
                    "progress_at": p.progress_at,
                    "seen_at": now,
                    "owner": owner,
                    "state": p.state if note is None else f"{p.state}: {note}"[:300],
                    "outage": note,
                    "reset_at": (resets or {}).get(p.partition),
                }
            )
            for p in partitions
        }
        await self.client.hset(self.key, mapping=mapping)

    async def read(self) -> dict[int, PublishedProgress]:
        raw = await self.client.hgetall(self.key)
        out: dict[int, PublishedProgress] = {}
        for field_name, value in raw.items():
            try:
                partition = int(field_name)
                data = orjson.loads(value)
                out[partition] = PublishedProgress(
                    partition,
                    data.get("committed"),
                    data.get("highwater"),
                    float(data["progress_at"]),
                    float(data["seen_at"]),
                    str(data.get("owner", "")),
                    str(data.get("state", "")),
                    data.get("reset_at"),
                    data.get("outage"),
                )
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                log.warning("ignoring an unreadable progress record %r in %s", field_name, self.key)
        return out


def progress_key(group: str, topic: str) -> str:
    return f"bgpo:progress:{group}:{topic}"
