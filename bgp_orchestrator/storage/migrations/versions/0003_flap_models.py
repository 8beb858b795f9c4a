"""Flap-prediction model registry and the latest prediction per session.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE flap_models (
            version        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at     timestamptz NOT NULL DEFAULT now(),
            -- the feature names, in the order of the ONNX input columns
            features       jsonb NOT NULL,
            metrics        jsonb NOT NULL,
            params         jsonb NOT NULL DEFAULT '{}',
            data_from      timestamptz NOT NULL,
            data_to        timestamptz NOT NULL,
            training_rows  bigint NOT NULL CHECK (training_rows >= 0),
            artifact_uri   text NOT NULL,
            onnx_max_diff  double precision NOT NULL,
            active         boolean NOT NULL DEFAULT false,
            activated_at   timestamptz,
            CHECK (data_from <= data_to)
        )
        """
    )
    # At most one model serves at a time.
    op.execute("CREATE UNIQUE INDEX flap_models_one_active ON flap_models (active) WHERE active")
    op.execute(
        """
        CREATE TABLE flap_predictions (
            session_id     text PRIMARY KEY,
            model_version  integer NOT NULL REFERENCES flap_models (version) ON DELETE CASCADE,
            probability    real NOT NULL CHECK (probability BETWEEN 0 AND 1),
            features_at    timestamptz,
            scored_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX flap_predictions_probability ON flap_predictions (probability DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS flap_predictions")
    op.execute("DROP TABLE IF EXISTS flap_models")
