"""API keys for machines: one tenant and one role each, stored as a keyed hash.

The key itself is shown once when created and never stored: ``key_hash`` is
HMAC-SHA256 of it under the deployment's API-key secret, looked up by its unique
index. ``prefix`` (the first characters of the key) lets a person recognise a key
in a list. A platform-administrator key belongs to no tenant; every other key
belongs to exactly one, and goes with it when the tenant is deleted.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_keys (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id bigint REFERENCES tenants (id) ON DELETE CASCADE,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            role text NOT NULL
                CHECK (role IN ('viewer', 'operator', 'admin', 'platform-admin')),
            prefix text NOT NULL,
            key_hash bytea NOT NULL UNIQUE,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            revoked_at timestamptz,
            last_used_at timestamptz,
            CHECK ((tenant_id IS NULL) = (role = 'platform-admin'))
        )
        """
    )
    op.execute("CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_keys")
