"""Anomalies and fitting runs in PostgreSQL (tables of migration 0004)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from bgp_orchestrator.anomaly.detect import SEVERITIES, Anomaly
from bgp_orchestrator.errors import InvalidInput, NotFound

_COLUMNS = (
    "id, run_id, metric, session, peer_asn, start_at, end_at, points, peak_at, score, actual, "
    "expected, lower_bound, upper_bound, direction, severity, engine, detected_at, updated_at"
)
_RUN_COLUMNS = (
    "id, started_at, finished_at, status, engine, params, data_from, data_to, series, fitted, "
    "skipped, anomalies, duration_s, error"
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


#: An anomaly belongs to a tenant when one of its peering sessions has the anomaly's
#: peer ASN and peer address (its series is named ``collector|peer address``).
TENANT_SESSIONS = (
    "EXISTS (SELECT 1 FROM peering_sessions s WHERE s.tenant_id = ${n} "
    "AND s.peer_asn = anomalies.peer_asn "
    "AND host(s.peer_address) = split_part(anomalies.session, '|', 2))"
)


@dataclass(frozen=True)
class AnomalyFilter:
    session: str | None = None
    peer_asn: int | None = None
    metric: str | None = None
    min_severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, tenant_id: int | None) -> tuple[str, list[Any]]:
        """The WHERE clause; ``tenant_id`` limits it to anomalies of that tenant's own
        sessions (same peer ASN and peer address); None = every session (platform)."""
        clauses: list[str] = []
        args: list[Any] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.format(n=len(args)))

        if tenant_id is not None:
            add(TENANT_SESSIONS, tenant_id)

        if self.session is not None:
            add("session = ${n}", self.session)
        if self.peer_asn is not None:
            add("peer_asn = ${n}", self.peer_asn)
        if self.metric is not None:
            add("metric = ${n}", self.metric)
        if self.min_severity is not None:
            if self.min_severity not in SEVERITIES:
                raise InvalidInput(
                    "unknown-severity",
                    f"severity must be one of {', '.join(SEVERITIES)}",
                    "severity",
                    self.min_severity,
                )
            add("severity = ANY(${n})", list(SEVERITIES[SEVERITIES.index(self.min_severity) :]))
        if self.since is not None:
            add("end_at >= ${n}", self.since)
        if self.until is not None:
            add("start_at < ${n}", self.until)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


async def start_run(
    conn: asyncpg.Connection,
    *,
    engine: str,
    params: dict[str, Any],
    data_from: datetime,
    data_to: datetime,
) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO anomaly_runs (engine, params, data_from, data_to) "
            "VALUES ($1, $2::jsonb, $3, $4) RETURNING id",
            engine,
            json.dumps(params),
            data_from,
            data_to,
        )
    )


async def finish_run(
    conn: asyncpg.Connection,
    run_id: int,
    *,
    series: int,
    fitted: int,
    skipped: dict[str, int],
    anomalies: int,
    error: str | None = None,
) -> None:
    await conn.execute(
        """
        UPDATE anomaly_runs
           SET finished_at = now(), status = $2, series = $3, fitted = $4,
               skipped = $5::jsonb, anomalies = $6, error = $7,
               duration_s = extract(epoch FROM now() - started_at)
         WHERE id = $1
        """,
        run_id,
        "failed" if error else "succeeded",
        series,
        fitted,
        json.dumps(skipped),
        anomalies,
        error,
    )


async def runs(conn: asyncpg.Connection, limit: int = 20) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM anomaly_runs ORDER BY id DESC LIMIT $1", limit
    )
    return [{**dict(r), "params": _json(r["params"]), "skipped": _json(r["skipped"])} for r in rows]


_UPSERT = """
    INSERT INTO anomalies (run_id, metric, session, peer_asn, start_at, end_at, points,
                           peak_at, score, actual, expected, lower_bound, upper_bound,
                           direction, severity, engine, series_window)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb)
    ON CONFLICT (metric, session, start_at) DO UPDATE
       SET run_id = EXCLUDED.run_id, end_at = EXCLUDED.end_at,
           points = EXCLUDED.points, peak_at = EXCLUDED.peak_at,
           score = EXCLUDED.score, actual = EXCLUDED.actual,
           expected = EXCLUDED.expected, lower_bound = EXCLUDED.lower_bound,
           upper_bound = EXCLUDED.upper_bound, direction = EXCLUDED.direction,
           severity = EXCLUDED.severity, engine = EXCLUDED.engine,
           series_window = EXCLUDED.series_window, updated_at = now()
"""


def _record(a: Anomaly, engine: str, run_id: int | None) -> tuple[Any, ...]:
    return (
        run_id,
        a.metric,
        a.session,
        a.peer_asn,
        a.start_at,
        a.end_at,
        a.points,
        a.peak_at,
        a.score,
        a.actual,
        a.expected,
        a.lower,
        a.upper,
        a.direction,
        a.severity,
        engine,
        # orjson: several times faster than json for the 100,000s of windows of a run
        orjson.dumps(a.window).decode(),
    )


#: From this many anomalies on, :func:`store` copies them in (one ``COPY`` into a
#: temporary table, one upsert from it) instead of one INSERT each.
COPY_FROM = 50
_COPY_COLUMNS = (
    "run_id", "metric", "session", "peer_asn", "start_at", "end_at", "points", "peak_at",
    "score", "actual", "expected", "lower_bound", "upper_bound", "direction", "severity",
    "engine", "series_window",
)  # fmt: skip


_INCOMING = """
    CREATE TEMPORARY TABLE IF NOT EXISTS anomalies_incoming (
        run_id bigint, metric text, session text, peer_asn bigint, start_at timestamptz,
        end_at timestamptz, points integer, peak_at timestamptz, score double precision,
        actual double precision, expected double precision, lower_bound double precision,
        upper_bound double precision, direction text, severity text, engine text,
        series_window jsonb
    ) ON COMMIT DELETE ROWS
"""


async def store(
    conn: asyncpg.Connection, anomalies: Sequence[Anomaly], *, engine: str, run_id: int | None
) -> int:
    """Insert anomalies; one already stored (same series and start) is updated with
    what the newer fit saw (it may have grown). Returns how many rows were written."""
    if not anomalies:
        return 0
    records = [_record(a, engine, run_id) for a in anomalies]
    async with conn.transaction():
        if len(records) < COPY_FROM:
            await conn.executemany(_UPSERT, records)
            return len(records)
        await conn.execute(_INCOMING)
        await conn.copy_records_to_table(
            "anomalies_incoming", records=records, columns=_COPY_COLUMNS
        )
        columns = ", ".join(_COPY_COLUMNS)
        # one row per (series, start): an upsert may not touch a row twice
        await conn.execute(
            f"INSERT INTO anomalies ({columns}) "
            f"SELECT DISTINCT ON (metric, session, start_at) {columns} "
            "FROM anomalies_incoming ORDER BY metric, session, start_at, end_at DESC "
            + _UPSERT[_UPSERT.index("ON CONFLICT") :]
        )
    return len(records)


async def store_returning_ids(
    conn: asyncpg.Connection, anomalies: Sequence[Anomaly], *, engine: str, run_id: int | None
) -> list[int]:
    """:func:`store`, one statement per anomaly, answering their ids (for a few)."""
    ids: list[int] = []
    async with conn.transaction():
        for a in anomalies:
            ids.append(
                int(await conn.fetchval(_UPSERT + " RETURNING id", *_record(a, engine, run_id)))
            )
    return ids


async def list_anomalies(
    conn: asyncpg.Connection,
    tenant_id: int | None,
    where: AnomalyFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    sql, args = where.where(tenant_id)
    total = int(await conn.fetchval(f"SELECT count(*) FROM anomalies{sql}", *args))
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM anomalies{sql} ORDER BY start_at DESC, id DESC "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        limit,
        offset,
    )
    return [dict(r) for r in rows], total


async def get(conn: asyncpg.Connection, tenant_id: int | None, anomaly_id: int) -> dict[str, Any]:
    """One anomaly, if it is of ``tenant_id``'s sessions (None: any)."""
    scope = "" if tenant_id is None else " AND " + TENANT_SESSIONS.format(n=2)
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, series_window FROM anomalies WHERE id = $1{scope}",
        anomaly_id,
        *([] if tenant_id is None else [tenant_id]),
    )
    if row is None:
        raise NotFound("anomaly-not-found", f"no anomaly {anomaly_id}", "id", anomaly_id)
    return {**dict(row), "series_window": _json(row["series_window"])}


async def summary(
    conn: asyncpg.Connection, tenant_id: int | None, where: AnomalyFilter, top: int = 10
) -> dict[str, Any]:
    sql, args = where.where(tenant_id)
    by_severity = await conn.fetch(
        f"SELECT severity, count(*) AS n FROM anomalies{sql} GROUP BY severity", *args
    )
    by_metric = await conn.fetch(
        f"SELECT metric, count(*) AS n FROM anomalies{sql} GROUP BY metric ORDER BY n DESC", *args
    )
    peers = await conn.fetch(
        f"SELECT peer_asn, count(*) AS n, max(score) AS max_score FROM anomalies{sql} "
        f"GROUP BY peer_asn ORDER BY n DESC, peer_asn LIMIT ${len(args) + 1}",
        *args,
        top,
    )
    last = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM anomaly_runs WHERE status <> 'running' "
        "ORDER BY id DESC LIMIT 1"
    )
    counts = {r["severity"]: int(r["n"]) for r in by_severity}
    return {
        "total": sum(counts.values()),
        "by_severity": {s: counts.get(s, 0) for s in SEVERITIES},
        "by_metric": {r["metric"]: int(r["n"]) for r in by_metric},
        "top_peers": [
            {"peer_asn": int(r["peer_asn"]), "anomalies": int(r["n"]), "max_score": r["max_score"]}
            for r in peers
        ],
        "last_run": (
            {**dict(last), "params": _json(last["params"]), "skipped": _json(last["skipped"])}
            if last
            else None
        ),
    }
