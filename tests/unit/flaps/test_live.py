"""Live features (window by window, bounded history) equal the offline features."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from bgp_orchestrator.bgp.update import Kind, Update
from bgp_orchestrator.flaps.feature_store import offline_dir, write_offline
from bgp_orchestrator.flaps.features import ENTITY, FEATURES, TIMESTAMP, derive_features
from bgp_orchestrator.flaps.live import LiveFeatures, LiveFeatureWriter
from bgp_orchestrator.flaps.windows import ORIGINS, WindowAggregator, window_counts
from bgp_orchestrator.sessionstats.stream import WindowStream
from bgp_orchestrator.settings import Settings

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp()
W = 300


def random_updates(seed: int, windows: int, sessions: int = 6) -> list[Update]:
    """A time-ordered stream with announcements, withdrawals, path changes and flaps."""
    rng = random.Random(seed)
    out: list[Update] = []
    for w in range(windows):
        for _ in range(rng.randint(0, 40)):
            peer = rng.randrange(sessions)
            kind = rng.choices(
                [Kind.ANNOUNCE, Kind.WITHDRAW, Kind.PEER_DOWN, Kind.PEER_UP],
                weights=[70, 25, 2, 2],
            )[0]
            prefix = f"10.{peer}.{rng.randrange(8)}.0/24" if kind <= Kind.WITHDRAW else ""
            path: tuple[int, ...] = ()
            if kind == Kind.ANNOUNCE:
                path = (64500 + peer, *rng.sample(range(1, 50), rng.randint(0, 3)), 65000)
            out.append(
                Update(
                    kind,
                    T0 + w * W + rng.uniform(0, W - 1),
                    f"192.0.2.{peer}",
                    64500 + peer,
                    prefix,
                    path,
                    collector="rrc00",
                )
            )
    # sessions joining late, and one flap long before the end
    out.append(Update(Kind.PEER_DOWN, T0 + 2 * W + 1, "192.0.2.0", 64500, collector="rrc00"))
    return sorted(out, key=lambda u: u.timestamp)


def offline(updates: list[Update]) -> pd.DataFrame:
    return derive_features(pd.DataFrame(window_counts(updates, W)), W)


def live(updates: list[Update]) -> pd.DataFrame:
    aggregator = WindowAggregator(W)
    features = LiveFeatures(W)
    rows: list[dict[str, object]] = []
    for update in updates:
        rows.extend(aggregator.add(update))
    rows.extend(aggregator.flush())
    frames = []
    for _, window in pd.DataFrame(rows).groupby("window_start", sort=True):
        frames.append(features.update(window.to_dict("records")))
    return pd.concat(frames, ignore_index=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.sort_values([ENTITY, TIMESTAMP], kind="stable").reset_index(drop=True)
    out[TIMESTAMP] = pd.to_datetime(out[TIMESTAMP], utc=True)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_features_equal_offline_features(seed: int) -> None:
    updates = random_updates(seed, windows=40)  # over three hours: history is cut
    expected, got = _sorted(offline(updates)), _sorted(live(updates))
    pd.testing.assert_frame_equal(got, expected)
    # the flaps left the kept hour, and still set the time since the last flap
    assert (expected["time_since_last_flap_s"] > 3600).any()
    assert (expected["time_since_last_flap_s"] < 7 * 24 * 3600).any()


def test_live_history_stays_bounded() -> None:
    updates = random_updates(4, windows=60, sessions=10)
    aggregator = WindowAggregator(W)
    features = LiveFeatures(W)
    rows = [r for u in updates for r in aggregator.add(u)]
    for _, window in pd.DataFrame(rows).groupby("window_start", sort=True):
        features.update(window.to_dict("records"))
    # 12 windows of 10 sessions, plus at most one flap row each
    assert features.history_rows <= 12 * 10 + 10


def test_the_stream_path_gives_the_same_features() -> None:
    """Through WindowStream (as the consumer runs it), over two partitions."""
    updates = random_updates(5, windows=20)
    stream = WindowStream(W, grace_s=10)
    features = LiveFeatures(W)
    frames = []
    for i, update in enumerate(updates):
        stream.offer(i % 2, i // 2, [update], now=0.0)
        for window in stream.advance([], now=0.0):
            frames.append(features.update(window.rows))
    for window in stream.advance([], now=W * 2):  # the quiet end closes the last window
        frames.append(features.update(window.rows))
    got = _sorted(pd.concat(frames, ignore_index=True))
    expected = _sorted(offline(updates))
    got = got[got[TIMESTAMP] <= expected[TIMESTAMP].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)


def test_windows_must_come_in_order() -> None:
    features = LiveFeatures(W)
    rows = window_counts(random_updates(6, windows=3), W)
    by_start = pd.DataFrame(rows).groupby("window_start")
    frames = [g.to_dict("records") for _, g in by_start]
    features.update(frames[1])
    with pytest.raises(ValueError, match="not after"):
        features.update(frames[0])
    with pytest.raises(ValueError, match="one window"):
        features.update(frames[1] + frames[2])


def test_origins_are_an_extra_key_the_features_ignore(tmp_path: Path) -> None:
    def a(t: float, prefix: str, path: tuple[object, ...]) -> Update:
        return Update(Kind.ANNOUNCE, T0 + t, "192.0.2.1", 64500, prefix, path)  # type: ignore[arg-type]

    rows = window_counts(
        [
            a(1, "10.0.0.0/24", (64500, 1)),
            a(2, "10.0.1.0/24", (64500, 2, 1)),  # origin 1 again
            a(3, "10.0.2.0/24", (64500, 7)),
            a(4, "10.0.3.0/24", (64500, (8, 9))),  # an AS_SET counts as one origin
            Update(Kind.WITHDRAW, T0 + 5, "192.0.2.1", 64500, "10.0.2.0/24"),
            a(W + 1, "10.0.0.0/24", (64500, 1)),
        ],
        W,
    )
    assert [r[ORIGINS] for r in rows] == [3, 1]
    frame = pd.DataFrame(rows)
    features = derive_features(frame, W)
    assert ORIGINS not in features.columns
    settings = Settings(data_dir=tmp_path)
    path = write_offline(settings, features, "with-origins")
    assert list(pd.read_parquet(path).columns) == [ENTITY, TIMESTAMP, *FEATURES]


def test_writer_names_files_per_window_and_remembers_the_last(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, flap_window_s=W)
    writer = LiveFeatureWriter(settings, "bgpo-session-stats")
    assert writer.last_written() is None
    rows = window_counts(random_updates(7, windows=3), W)
    starts = sorted({int(r["window_start"].timestamp()) for r in rows})
    for start in starts:
        window = [r for r in rows if int(r["window_start"].timestamp()) == start]
        assert writer.write_window(start, window) == len(window)
    files = sorted(p.name for p in offline_dir(settings).glob("*.parquet"))
    assert files == [f"live-{s}-bgpo-session-stats.parquet" for s in starts]
    assert writer.last_written() == starts[-1]
    # another writer's files are not this writer's marker
    assert LiveFeatureWriter(settings, "other group").last_written() is None
    stored = pd.read_parquet(offline_dir(settings))
    assert len(stored) == len(rows)
    with pytest.raises(ValueError, match="not of the window"):
        LiveFeatureWriter(settings, "x").write_window(starts[0] + W, rows[:1])
