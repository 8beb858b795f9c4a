"""Conflicts, their event outbox, webhooks, and the reference-data version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCE_TABLES = ("tenants", "autonomous_systems", "neighbor_asns", "prefixes")
SEVERITIES = "('info', 'low', 'medium', 'high', 'critical')"


def _execute_all(sql: str) -> None:
    """Run each statement of ``sql`` on its own (asyncpg prepares one statement at a time)."""
    statement: list[str] = []
    in_body = False
    for line in sql.splitlines():
        statement.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            op.execute("\n".join(statement))
            statement = []
    if "".join(statement).strip():
        op.execute("\n".join(statement))


def upgrade() -> None:
    # Detectors poll this version (and listen on bgpo_reference) to reload
    # monitored prefixes and neighbours when the inventory changes.
    _execute_all(
        """
        CREATE TABLE reference_version (
            id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            version    bigint NOT NULL DEFAULT 0,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO reference_version (id, version) VALUES (1, 0);
        CREATE FUNCTION bump_reference_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE reference_version SET version = version + 1, changed_at = now() WHERE id = 1;
            PERFORM pg_notify('bgpo_reference', '');
            RETURN NULL;
        END $$;
        """
    )
    for table in REFERENCE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_reference_version AFTER INSERT OR UPDATE OR DELETE "
            f"OR TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_reference_version()"
        )

    _execute_all(
        f"""
        CREATE TABLE conflicts (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key              text NOT NULL UNIQUE,
            tenant_id        bigint REFERENCES tenants(id) ON DELETE CASCADE,
            type             text NOT NULL,
            severity         text NOT NULL CHECK (severity IN {SEVERITIES}),
            prefix           cidr NOT NULL,
            origin_asn       bigint,
            detail_key       text NOT NULL DEFAULT '',
            as_path          text NOT NULL DEFAULT '',
            monitored_prefix cidr,
            peers            text[] NOT NULL DEFAULT '{{}}',
            first_seen       timestamptz NOT NULL,
            last_seen        timestamptz NOT NULL,
            state            text NOT NULL DEFAULT 'ongoing'
                             CHECK (state IN ('ongoing', 'resolved', 'acknowledged', 'ignored')),
            state_changed_at timestamptz NOT NULL DEFAULT now(),
            resolved_at      timestamptz,
            details          jsonb NOT NULL DEFAULT '{{}}',
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX conflicts_tenant_last_seen_idx ON conflicts (tenant_id, last_seen DESC);
        CREATE INDEX conflicts_type_idx ON conflicts (type);
        CREATE INDEX conflicts_state_idx ON conflicts (state);
        CREATE INDEX conflicts_origin_idx ON conflicts (origin_asn);
        CREATE INDEX conflicts_prefix_gist ON conflicts USING gist (prefix inet_ops);
        """
    )
    # The outbox: every state change of a conflict, written in the same
    # transaction as the change; webhooks and the live stream read from here.
    _execute_all(
        """
        CREATE TABLE conflict_events (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conflict_id   bigint NOT NULL REFERENCES conflicts(id) ON DELETE CASCADE,
            tenant_id     bigint REFERENCES tenants(id) ON DELETE CASCADE,
            event         text NOT NULL
                          CHECK (event IN ('opened', 'reopened', 'resolved', 'acknowledged',
                                           'ignored')),
            created_at    timestamptz NOT NULL DEFAULT now(),
            dispatched_at timestamptz
        );
        CREATE INDEX conflict_events_pending_idx ON conflict_events (id)
            WHERE dispatched_at IS NULL;
        CREATE FUNCTION conflict_event() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            kind text;
            event_id bigint;
        BEGIN
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
        CREATE TRIGGER conflicts_events AFTER INSERT OR UPDATE OF state ON conflicts
            FOR EACH ROW EXECUTE FUNCTION conflict_event();
        """
    )
    _execute_all(
        f"""
        CREATE TABLE webhooks (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id    bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            name         text NOT NULL,
            url          text NOT NULL CHECK (url ~ '^https?://'),
            format       text NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
            min_severity text NOT NULL DEFAULT 'medium' CHECK (min_severity IN {SEVERITIES}),
            types        text[] NOT NULL DEFAULT '{{}}',
            enabled      boolean NOT NULL DEFAULT true,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT webhooks_tenant_name_key UNIQUE (tenant_id, name)
        );
        CREATE TABLE webhook_deliveries (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            webhook_id      bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
            event_id        bigint NOT NULL REFERENCES conflict_events(id) ON DELETE CASCADE,
            status          text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error      text,
            delivered_at    timestamptz,
            CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id)
        );
        CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
            WHERE status = 'pending';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS webhook_deliveries, webhooks")
    op.execute("DROP TABLE IF EXISTS conflict_events, conflicts CASCADE")
    op.execute("DROP FUNCTION IF EXISTS conflict_event()")
    for table in REFERENCE_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_reference_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS bump_reference_version()")
    op.execute("DROP TABLE IF EXISTS reference_version")
