"""Alert channels may be e-mail addresses: ``mailto:`` URLs, with a ``channel`` column.

An e-mail channel is a ``webhooks`` row whose URL is ``mailto:<address>``, so
its deliveries share the webhooks' fan-out (severity and type filters), lease,
attempts, timeouts, give-up and listing (``GET /api/v1/webhooks/{id}/
deliveries``). ``channel`` (``webhook`` or ``email``) is generated from the URL,
so the two can never disagree (an API update to an http(s) URL makes the row a
webhook again). Existing rows are all http(s): all ``webhook``. The e-mail
addresses tenants already saved in the portal (stored, never mailed until now)
become their ``portal-email`` channel, with their preferences' severity and
types.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE webhooks DROP CONSTRAINT webhooks_url_check, "
        "ADD CONSTRAINT webhooks_url_check CHECK ("
        "url ~ '^https?://' OR url ~ '^mailto:[^@[:space:],]+@[^@[:space:],]+$'), "
        "ADD COLUMN channel text NOT NULL GENERATED ALWAYS AS ("
        "CASE WHEN url LIKE 'mailto:%' THEN 'email' ELSE 'webhook' END) STORED"
    )
    op.execute(
        "INSERT INTO webhooks (tenant_id, name, url, format, min_severity, types) "
        "SELECT tenant_id, 'portal-email', 'mailto:' || email, 'json', min_severity, types "
        "FROM alert_preferences WHERE email ~ '^[^@[:space:],]+@[^@[:space:],]+$' "
        "ON CONFLICT (tenant_id, name) DO NOTHING"
    )


def downgrade() -> None:
    # Revision 0011 cannot hold an e-mail channel: those rows (and their deliveries) go.
    op.execute("DELETE FROM webhooks WHERE url LIKE 'mailto:%'")
    op.execute(
        "ALTER TABLE webhooks DROP COLUMN IF EXISTS channel, "
        "DROP CONSTRAINT webhooks_url_check, "
        "ADD CONSTRAINT webhooks_url_check CHECK (url ~ '^https?://')"
    )
