"""Anomaly-fitting runs and the anomalies they found.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE anomaly_runs (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started_at   timestamptz NOT NULL DEFAULT now(),
            finished_at  timestamptz,
            status       text NOT NULL DEFAULT 'running'
                         CHECK (status IN ('running', 'succeeded', 'failed')),
            engine       text NOT NULL,
            params       jsonb NOT NULL,
            data_from    timestamptz NOT NULL,
            data_to      timestamptz NOT NULL,
            series       integer NOT NULL DEFAULT 0 CHECK (series >= 0),
            fitted       integer NOT NULL DEFAULT 0 CHECK (fitted >= 0),
            -- reason -> number of series skipped for it
            skipped      jsonb NOT NULL DEFAULT '{}',
            anomalies    integer NOT NULL DEFAULT 0 CHECK (anomalies >= 0),
            duration_s   double precision,
            error        text,
            CHECK (data_from <= data_to)
        )
        """
    )
    op.execute("CREATE INDEX anomaly_runs_started ON anomaly_runs (started_at DESC)")
    op.execute(
        """
        CREATE TABLE anomalies (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id       bigint REFERENCES anomaly_runs (id) ON DELETE SET NULL,
            metric       text NOT NULL,
            session      text NOT NULL,
            peer_asn     bigint NOT NULL CHECK (peer_asn BETWEEN 0 AND 4294967295),
            start_at     timestamptz NOT NULL,
            end_at       timestamptz NOT NULL,
            points       integer NOT NULL CHECK (points > 0),
            peak_at      timestamptz NOT NULL,
            score        double precision NOT NULL CHECK (score >= 0),
            actual       double precision NOT NULL,
            expected     double precision NOT NULL,
            lower_bound  double precision NOT NULL,
            upper_bound  double precision NOT NULL,
            direction    text NOT NULL CHECK (direction IN ('above', 'below')),
            severity     text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
            engine       text NOT NULL,
            -- the series around the anomaly: timestamps, actual, expected, lower, upper
            series_window jsonb NOT NULL,
            detected_at  timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            CHECK (start_at <= end_at),
            -- a refit that finds the same anomaly again updates it
            UNIQUE (metric, session, start_at)
        )
        """
    )
    op.execute("CREATE INDEX anomalies_series ON anomalies (session, metric, start_at DESC)")
    op.execute("CREATE INDEX anomalies_time ON anomalies (start_at DESC)")
    op.execute("CREATE INDEX anomalies_severity ON anomalies (severity, start_at DESC)")
    op.execute("CREATE INDEX anomalies_peer ON anomalies (peer_asn, start_at DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS anomalies")
    op.execute("DROP TABLE IF EXISTS anomaly_runs")
