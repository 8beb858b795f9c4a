"""Compaction of the live feature files: a Parquet file per window, merged per hour and day.

The live session stats write ``live-<window start>-<writer>.parquet`` into the
offline store for every window (:class:`~bgp_orchestrator.flaps.live.LiveFeatureWriter`):
288 files a day per writer at 5-minute windows. :func:`compact` merges a
writer's files of a completed hour into ``compact-<from>-<to>-<writer>.parquet``
(``from``/``to``: epoch seconds, ``to`` exclusive), and a completed day's hour
files into one file of the day. A range is compacted only once the writer's
newest window is ``after_s`` past its end, out of reach of a replay.

Safe against a concurrent reader and a crash at any point:

1. the merged file is written under a hidden name (``.compact-….partial``,
   which no reader lists) and renamed into place: a reader sees it whole or
   not at all;
2. only then are the small files removed. Between 1 and 2 a reader may see a
   row twice (identical copies: the offline store's readers keep one row per
   session and time); a reader that listed a file just removed retries
   (:func:`~bgp_orchestrator.flaps.feature_store.read_offline`);
3. a crash between 1 and 2 leaves small files inside a compacted range: the
   next run removes them first.

Readers need no change: the offline store stays a directory of Parquet files.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bgp_orchestrator.flaps.features import ENTITY, TIMESTAMP

log = logging.getLogger(__name__)

HOUR = 3600
DAY = 86400
#: The ranges files are merged into, smallest first.
LEVELS = (HOUR, DAY)


@dataclass(frozen=True)
class FeatureFile:
    path: Path
    start: int  # first second covered
    end: int  # exclusive
    compacted: bool


@dataclass(frozen=True)
class Compacted:
    files_merged: int
    files_written: int
    leftovers_removed: int


def _patterns(writer: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    tag = re.escape(writer)
    return (
        re.compile(rf"^live-(\d+)-{tag}\.parquet$"),
        re.compile(rf"^compact-(\d+)-(\d+)-{tag}\.parquet$"),
    )


def compacted_name(start: int, end: int, writer: str) -> str:
    return f"compact-{start}-{end}-{writer}.parquet"


def writer_files(folder: Path, writer: str, window_s: int) -> list[FeatureFile]:
    """The files of one writer, window files and compacted ones, by start."""
    live, compacted = _patterns(writer)
    out: list[FeatureFile] = []
    if not folder.is_dir():
        return out
    for path in folder.iterdir():
        if (m := live.match(path.name)) is not None:
            start = int(m.group(1))
            out.append(FeatureFile(path, start, start + window_s, False))
        elif (m := compacted.match(path.name)) is not None:
            out.append(FeatureFile(path, int(m.group(1)), int(m.group(2)), True))
    return sorted(out, key=lambda f: (f.start, -f.end))


def _remove_leftovers(files: list[FeatureFile]) -> tuple[list[FeatureFile], int]:
    """Drop (and delete) files inside a compacted range: a crash after the merged file
    was written and before its inputs were removed."""
    ranges = [(f.start, f.end, f.path) for f in files if f.compacted]
    keep, removed = [], 0
    for f in files:
        inside = any(a <= f.start and f.end <= b and path != f.path for a, b, path in ranges)
        if inside:
            f.path.unlink(missing_ok=True)
            removed += 1
        else:
            keep.append(f)
    return keep, removed


def _merge(files: list[FeatureFile], target: Path) -> None:
    frames = [pd.read_parquet(f.path) for f in files]
    merged = pd.concat(frames, ignore_index=True)
    merged = (
        merged.drop_duplicates([ENTITY, TIMESTAMP], keep="last")
        .sort_values([TIMESTAMP, ENTITY], kind="stable")
        .reset_index(drop=True)
    )
    partial = target.with_name(f".{target.name}.partial")
    try:
        merged.to_parquet(partial, index=False)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def compact(
    folder: Path, writer: str, window_s: int, newest: int, after_s: int = HOUR
) -> Compacted:
    """Merge the writer's files of every hour (then day) that ended ``after_s`` before
    the end of its ``newest`` window (epoch s)."""
    files, removed = _remove_leftovers(writer_files(folder, writer, window_s))
    cutoff = newest + window_s - after_s
    merged = written = 0
    for level in LEVELS:
        buckets: dict[int, list[FeatureFile]] = {}
        for f in files:
            bucket = f.start // level * level
            if f.end <= bucket + level:  # fits in the range (a day file does not fit an hour)
                buckets.setdefault(bucket, []).append(f)
        for bucket, group in sorted(buckets.items()):
            end = bucket + level
            if end > cutoff or len(group) < 2:
                continue
            target = folder / compacted_name(bucket, end, writer)
            _merge(group, target)
            for f in group:
                if f.path != target:
                    f.path.unlink(missing_ok=True)
            merged += len(group)
            written += 1
            log.info("compacted %d feature files of %s into %s", len(group), writer, target.name)
        files = writer_files(folder, writer, window_s)
    return Compacted(merged, written, removed)


def covered(folder: Path, writer: str, window_s: int, start: int) -> bool:
    """True if a compacted file of the writer holds window ``start`` already."""
    return any(
        f.compacted and f.start <= start < f.end for f in writer_files(folder, writer, window_s)
    )
