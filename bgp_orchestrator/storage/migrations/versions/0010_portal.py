"""The customer portal: server-side sessions, support tickets, daily usage, plans, alert
preferences.

``portal_sessions`` holds a browser session's data under the SHA-256 of its id (the
cookie carries the signed id, never the data). ``usage_daily`` has one row per tenant,
day and metric: counters add up (API calls, updates processed), gauges keep the day's
highest value (sessions and prefixes monitored). ``tenant_plans`` keeps every plan a
tenant had, so an invoice prorates a change in the middle of a month.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEVERITIES = "('info', 'low', 'medium', 'high', 'critical')"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE portal_sessions (
            id_hash    bytea PRIMARY KEY,
            data       jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX portal_sessions_expires_idx ON portal_sessions (expires_at)")
    op.execute(
        """
        CREATE TABLE support_tickets (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id  bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
            priority   text NOT NULL DEFAULT 'normal'
                       CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
            status     text NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'waiting', 'closed')),
            opened_by  text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX support_tickets_tenant_idx ON support_tickets (tenant_id, status, id)")
    op.execute(
        """
        CREATE TABLE ticket_comments (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ticket_id  bigint NOT NULL REFERENCES support_tickets(id) ON DELETE CASCADE,
            author     text NOT NULL,
            body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ticket_comments_ticket_idx ON ticket_comments (ticket_id, id)")
    op.execute(
        """
        CREATE TABLE ticket_status_changes (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ticket_id   bigint NOT NULL REFERENCES support_tickets(id) ON DELETE CASCADE,
            from_status text,
            to_status   text NOT NULL,
            changed_by  text NOT NULL,
            changed_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX ticket_status_changes_ticket_idx ON ticket_status_changes (ticket_id, id)"
    )
    op.execute(
        """
        CREATE TABLE usage_daily (
            tenant_id bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            day       date NOT NULL,
            metric    text NOT NULL CHECK (metric IN ('api_calls', 'updates_processed',
                                                      'sessions_monitored',
                                                      'prefixes_monitored')),
            value     bigint NOT NULL CHECK (value >= 0),
            PRIMARY KEY (tenant_id, day, metric)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE tenant_plans (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id  bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            plan       text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            changed_by text NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX tenant_plans_tenant_idx ON tenant_plans (tenant_id, started_at)")
    op.execute(
        f"""
        CREATE TABLE alert_preferences (
            tenant_id    bigint PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
            email        text CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
            min_severity text NOT NULL DEFAULT 'medium' CHECK (min_severity IN {SEVERITIES}),
            types        text[] NOT NULL DEFAULT '{{}}',
            updated_at   timestamptz NOT NULL DEFAULT now(),
            updated_by   text NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS alert_preferences, tenant_plans, usage_daily, "
        "ticket_status_changes, ticket_comments, support_tickets, portal_sessions"
    )
