"""The MetricStore contract, checked the same way on every implementation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd

from bgp_orchestrator.anomaly.series import MetricPoint, bucket_of
from bgp_orchestrator.anomaly.store import COLUMNS, MetricStore

STEP_S = 300
POINTS_PER_SERIES = 10
# Regex metacharacters, IPv6 colons and a '|' in every name: the session filter must escape.
SESSIONS = {
    "rrc00|192.0.2.1": 64500,
    "rrc00|192.0.2.10": 64501,  # a prefix of no other session, but "192.0.2.1" is its prefix
    "rrc01|2001:db8::1": 64502,
    "lab+x.(a)|10.0.0.1": 64503,
    "lab*x|10.0.0.2": 4200000001,  # a 32-bit ASN
}
METRICS = ["bgpo_session_update_rate", "bgpo_session_prefixes"]
BAND = "bgpo_anomaly_upper"
BAND_LABELS = (("series_metric", "bgpo_session_prefixes"),)


def base_time() -> datetime:
    """Two hours ago on a whole minute: inside any retention, never in the future."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(hours=2)


def make_points(base: datetime) -> list[MetricPoint]:
    points = []
    t0 = base.timestamp()
    for s_index, (session, asn) in enumerate(SESSIONS.items()):
        for m_index, metric in enumerate(METRICS):
            for i in range(POINTS_PER_SERIES):
                value = s_index * 100 + m_index * 10 + i + 0.25
                points.append(MetricPoint(metric, session, asn, t0 + i * STEP_S, value))
        # Band series of one metric, with a further label.
        for i in range(3):
            points.append(
                MetricPoint(BAND, session, asn, t0 + i * STEP_S + 0.5, -1.5 * i, BAND_LABELS)
            )
    return points


def expected_frame(
    points: Sequence[MetricPoint],
    start: datetime,
    end: datetime,
    metrics: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
) -> pd.DataFrame:
    rows = [
        (p.metric, p.session, p.peer_asn, round(p.timestamp * 1000), p.value)
        for p in points
        if start.timestamp() <= p.timestamp < end.timestamp()
        and (metrics is None or p.metric in metrics)
        and (sessions is None or p.session in sessions)
    ]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms", utc=True)
    frame = frame.astype(COLUMNS)
    return frame.sort_values(["metric", "session", "timestamp"]).reset_index(drop=True)


def assert_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in got.dtypes.items()} == COLUMNS
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=True)


async def check_contract(store: MetricStore, flush: Callable[[], Awaitable[None]]) -> None:
    """Write points of several sessions and metrics, then read them back exactly."""
    base = base_time()
    points = make_points(base)
    half = len(points) // 2
    await store.write(points[:half])
    await store.write(points[half:])
    await flush()
    end = base + timedelta(seconds=POINTS_PER_SERIES * STEP_S)

    # Everything, then filters by metric and session (the regex characters must not leak).
    assert_frame(await store.read(start=base, end=end), expected_frame(points, base, end))
    chosen = ["rrc00|192.0.2.1", "lab+x.(a)|10.0.0.1", "rrc01|2001:db8::1"]
    got = await store.read(start=base, end=end, metrics=[METRICS[1]], sessions=chosen)
    assert_frame(got, expected_frame(points, base, end, [METRICS[1]], chosen))
    assert set(got["session"]) == set(chosen)
    got = await store.read(start=base, end=end, sessions=["lab*x|10.0.0.2", "absent|1.1.1.1"])
    assert_frame(got, expected_frame(points, base, end, sessions=["lab*x|10.0.0.2"]))

    # start <= timestamp < end.
    start2, end2 = base + timedelta(seconds=2 * STEP_S), base + timedelta(seconds=5 * STEP_S)
    got = await store.read(start=start2, end=end2, metrics=METRICS)
    assert sorted(set(got["timestamp"])) == [
        pd.Timestamp(base + timedelta(seconds=k * STEP_S)) for k in (2, 3, 4)
    ]
    assert_frame(got, expected_frame(points, start2, end2, METRICS))

    # Nothing asked, nothing found.
    assert (await store.read(start=base, end=end, sessions=[])).empty
    assert (await store.read(start=base, end=end, metrics=["bgpo_nothing"])).empty
    later = end + timedelta(hours=1)
    assert (await store.read(start=later, end=later + timedelta(minutes=5))).empty

    # The series listing.
    want = sorted((m, s, asn) for s, asn in SESSIONS.items() for m in [*METRICS, BAND])
    # (VictoriaMetrics answers per day: other tests' series of the same day may be listed.)
    listed = await store.series(start=base, end=end)
    assert list(listed.columns) == ["metric", "session", "peer_asn"]
    assert str(listed["peer_asn"].dtype) == "int64"
    mine = listed[listed["session"].isin(list(SESSIONS))]
    assert list(mine.itertuples(index=False, name=None)) == want
    listed = await store.series(start=base, end=end, metrics=[BAND])
    mine = listed[listed["session"].isin(list(SESSIONS))]
    assert list(mine.itertuples(index=False, name=None)) == [w for w in want if w[0] == BAND]


async def check_many_sessions(
    store: MetricStore, flush: Callable[[], Awaitable[None]], count: int = 500
) -> None:
    """One read for ``count`` sessions (the fitting job's chunk size)."""
    base = base_time() - timedelta(hours=1)
    sessions = [f"col{i % 7}|10.{i // 250}.{i % 250}.1" for i in range(count)]
    points = [
        MetricPoint("bgpo_session_origins", s, 65000 + i, base.timestamp() + k * STEP_S, i + k)
        for i, s in enumerate(sessions)
        for k in range(3)
    ]
    await store.write(points)
    await flush()
    end = base + timedelta(seconds=3 * STEP_S)
    got = await store.read(
        start=base, end=end, metrics=["bgpo_session_origins"], sessions=sessions[:-1]
    )
    want = expected_frame(points, base, end, ["bgpo_session_origins"], sessions[:-1])
    assert len(got) == 3 * (count - 1)
    assert_frame(got, want)
    # The fitting job's chunks: whole buckets, by an exact label match.
    chosen = sorted({bucket_of(s) for s in sessions[:40]})[:3]
    in_buckets = [s for s in sessions if bucket_of(s) in chosen]
    got = await store.read(start=base, end=end, metrics=["bgpo_session_origins"], buckets=chosen)
    assert set(got["session"]) == set(in_buckets)
    assert_frame(got, expected_frame(points, base, end, ["bgpo_session_origins"], in_buckets))
    both = await store.read(start=base, end=end, sessions=sessions[:40], buckets=chosen[:1])
    assert set(both["session"]) == {s for s in sessions[:40] if bucket_of(s) == chosen[0]}
    assert (await store.read(start=base, end=end, buckets=[])).empty
