"""Storing anomalies: the bulk COPY path and the per-row path upsert alike."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from bgp_orchestrator.anomaly import repository
from bgp_orchestrator.anomaly.detect import Anomaly
from bgp_orchestrator.storage.database import Database

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 1, tzinfo=UTC)


def _anomalies(metric: str, count: int, points: int = 1) -> list[Anomaly]:
    out = []
    for number in range(count):
        at = START + timedelta(hours=number)
        out.append(
            Anomaly(
                metric=metric,
                session=f"rrc00|192.0.2.{number % 200}",
                peer_asn=64500 + number,
                start_at=at,
                end_at=at + timedelta(hours=points - 1),
                points=points,
                peak_at=at,
                score=4.5 + points,
                actual=10.0,
                expected=2.0,
                lower=0.0,
                upper=4.0,
                direction="above",
                severity="low",
                window={"timestamps": [int(at.timestamp())], "actual": [10.0]},
            )
        )
    return out


@pytest.mark.parametrize("count", [3, repository.COPY_FROM + 10])
async def test_store_inserts_then_updates_what_grew(db: Database, count: int) -> None:
    metric = f"bgpo_test_{secrets.token_hex(3)}"
    async with db.connection() as conn:
        assert await repository.store(conn, _anomalies(metric, count), engine="e", run_id=None) == (
            count
        )
        grown = _anomalies(metric, count, points=3)
        assert await repository.store(conn, grown, engine="e2", run_id=None) == count
        rows = await conn.fetch(
            "SELECT points, engine, score, series_window FROM anomalies WHERE metric = $1",
            metric,
        )
    assert len(rows) == count
    assert {(r["points"], r["engine"], r["score"]) for r in rows} == {(3, "e2", 7.5)}
    assert '"timestamps"' in rows[0]["series_window"]
