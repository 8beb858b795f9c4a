"""Live feature files merged per hour and day: the same rows for readers, during and after,
and a crash between writing the merged file and removing the small ones is repaired."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bgp_orchestrator.flaps.compaction import compact, compacted_name, writer_files
from bgp_orchestrator.flaps.feature_store import (
    newest_rows,
    offline_dir,
    read_offline,
    write_offline,
)
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, TIMESTAMP
from bgp_orchestrator.flaps.live import LiveFeatureWriter
from bgp_orchestrator.settings import Settings

W = 1800  # two windows an hour, 48 a day: every level merges, with few files
DAY0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp())


def rows(start: int, sessions: int = 3) -> list[dict[str, object]]:
    return [
        {
            ENTITY: f"c|192.0.2.{s}",
            "peer_asn": 64500 + s,
            "window_start": datetime.fromtimestamp(start, UTC),
            "announcements": (start // W + s) % 7,
            "withdrawals": s,
            "distinct_prefixes": 1,
            "path_len_sum": 3,
            "path_len_count": 1,
            "path_changes": 0,
            "downs": int((start // W) % 20 == s),
            "ups": 0,
            "prefix_count": 10 + s,
        }
        for s in range(sessions)
    ]


def written(tmp_path: Path, windows: int) -> tuple[Settings, LiveFeatureWriter]:
    """A writer's window files (features made up: compaction does not look at them)."""
    settings = Settings(data_dir=tmp_path, flap_window_s=W)
    writer = LiveFeatureWriter(settings, "merge-p0")
    for i in range(windows):
        start = DAY0 + i * W
        frame = pd.DataFrame(
            {
                ENTITY: [f"c|192.0.2.{s}" for s in range(3)],
                TIMESTAMP: pd.Timestamp(start + W, unit="s", tz="UTC"),
                **{name: [float(i % 7 + s) for s in range(3)] for name in FEATURES},
            }
        )
        write_offline(settings, frame, writer.file_name(start))
    return settings, writer


def everything(settings: Settings) -> pd.DataFrame:
    table = read_offline(
        settings,
        [ENTITY, TIMESTAMP, *FEATURES],
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
    )
    frame = table.to_pandas().drop_duplicates([ENTITY, TIMESTAMP])
    return frame.sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)


def test_hours_then_days_are_merged_and_readers_see_the_same_rows(tmp_path: Path) -> None:
    windows = 2 * 48 + 10  # two whole days and five hours of the third
    settings, writer = written(tmp_path, windows)
    before = everything(settings)
    newest = DAY0 + (windows - 1) * W
    done = writer.compact(newest, after_s=3600)
    assert done.files_written > 0
    files = writer_files(offline_dir(settings), writer.writer, W)
    names = {f.path.name for f in files}
    # two days in one file each; the third day's hours compacted up to an hour ago, the
    # last hour's windows still one file each
    assert compacted_name(DAY0, DAY0 + 86400, "merge-p0") in names
    assert compacted_name(DAY0 + 86400, DAY0 + 2 * 86400, "merge-p0") in names
    day3 = DAY0 + 2 * 86400
    assert compacted_name(day3, day3 + 3600, "merge-p0") in names
    assert sum(not f.compacted for f in files) == 2  # the last hour's
    assert len(files) == 2 + 4 + 2
    pd.testing.assert_frame_equal(everything(settings), before)
    # nothing hidden or partial is left behind
    assert not [p for p in offline_dir(settings).iterdir() if p.name.startswith(".")]
    # the writer knows its newest window still, and does not write a compacted one again
    assert writer.last_written() == newest
    assert writer.write_window(newest + W, rows(newest + W)) == 3
    replay = LiveFeatureWriter(settings, "merge-p0")
    assert replay.write_window(DAY0, rows(DAY0)) == 0 and replay.skipped == 1
    # compacting again changes nothing
    again = writer.compact(newest, after_s=3600)
    assert again.files_written == 0


def test_a_crash_between_the_merged_file_and_the_removal_is_repaired(tmp_path: Path) -> None:
    settings, writer = written(tmp_path, 4)  # two hours
    folder = offline_dir(settings)
    saved = tmp_path / "saved"
    saved.mkdir()
    for path in folder.glob("live-*.parquet"):
        shutil.copy(path, saved / path.name)
    writer.compact(DAY0 + 3 * W, after_s=3600)  # the first hour
    # as if the process died before removing the inputs: put them back
    for path in saved.iterdir():
        if not (folder / path.name).exists():
            shutil.copy(path, folder / path.name)
    before = everything(settings)  # readers keep one copy of identical rows
    done = compact(folder, writer.writer, W, DAY0 + 3 * W, after_s=3600)
    assert done.leftovers_removed == 2
    assert len(list(folder.glob("*.parquet"))) == 1 + 2
    pd.testing.assert_frame_equal(everything(settings), before)


def test_a_concurrent_reader_always_sees_every_row(tmp_path: Path) -> None:
    settings, writer = written(tmp_path, 96)
    end = datetime.fromtimestamp(DAY0 + 97 * W, UTC)
    want = newest_rows(settings, end).reset_index(drop=True)
    full = len(everything(settings))
    answers: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                got = newest_rows(settings, end).reset_index(drop=True)
                answers.append((len(got), len(everything(settings))))
                pd.testing.assert_frame_equal(got, want)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        writer.compact(DAY0 + 100 * W, after_s=0)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[0]
    assert answers and all(rows_seen == full for _, rows_seen in answers)
