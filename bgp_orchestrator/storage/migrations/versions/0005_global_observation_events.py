"""Global observations raise no conflict events.

Observations of prefixes no tenant owns (``tenant_id`` NULL) are aggregated
per prefix and type and belong to no tenant: no webhook or live stream can
subscribe to them, yet every new row queued an event and a NOTIFY. In a storm
(200,000 prefixes) that doubled the writes and flooded every API replica's
LISTEN connection. Tenant conflicts keep their events unchanged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION conflict_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    event_id bigint;
BEGIN
    {skip_global}
    IF TG_OP = 'INSERT' THEN
        kind := 'opened';
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        kind := CASE WHEN NEW.state = 'ongoing' THEN 'reopened' ELSE NEW.state END;
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO conflict_events (conflict_id, tenant_id, event)
        VALUES (NEW.id, NEW.tenant_id, kind) RETURNING id INTO event_id;
    PERFORM pg_notify('bgpo_conflicts', json_build_object(
        'event_id', event_id, 'conflict_id', NEW.id, 'tenant_id', NEW.tenant_id,
        'event', kind)::text);
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(
        _FUNCTION.replace(
            "{skip_global}", "IF NEW.tenant_id IS NULL THEN\n        RETURN NULL;\n    END IF;"
        )
    )
    # Events of global rows were never delivered to anyone.
    op.execute("DELETE FROM conflict_events WHERE tenant_id IS NULL")


def downgrade() -> None:
    op.execute(_FUNCTION.replace("{skip_global}", ""))
