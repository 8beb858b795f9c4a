"""Webhook deliveries keep their outcome; the live stream reads the outbox per tenant.

A delivery records when it was created, last attempted and given up, so that
failed deliveries can be listed (and retried) through the API; the index on
``(webhook_id, status, id)`` serves that listing and the dispatcher's lease,
which takes a few due deliveries per webhook. The live stream reads a
tenant's events in id order after a cursor: ``(tenant_id, id)``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # now() is stable: PostgreSQL stores it as the default of existing rows, no rewrite.
    op.execute(
        "ALTER TABLE webhook_deliveries "
        "ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(), "
        "ADD COLUMN last_attempt_at timestamptz, "
        "ADD COLUMN failed_at timestamptz"
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_webhook_status_idx "
        "ON webhook_deliveries (webhook_id, status, id)"
    )
    op.execute("CREATE INDEX conflict_events_tenant_idx ON conflict_events (tenant_id, id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS conflict_events_tenant_idx")
    op.execute("DROP INDEX IF EXISTS webhook_deliveries_webhook_status_idx")
    op.execute(
        "ALTER TABLE webhook_deliveries DROP COLUMN failed_at, DROP COLUMN last_attempt_at, "
        "DROP COLUMN created_at"
    )
