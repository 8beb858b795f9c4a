"""Each webhook's signing secret, stored encrypted.

Deliveries are signed with HMAC-SHA256, so the secret must be recoverable: it
is kept as a Fernet token (``secret_ciphertext``) under a key that lives outside
the database (``BGPO_WEBHOOK_SECRET_KEYS``). Webhooks created before this
revision have none until their secret is rotated
(``POST /api/v1/webhooks/{id}/secret``); their deliveries fail with that advice
instead of going out unsigned.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE webhooks ADD COLUMN secret_ciphertext text")
    op.execute("ALTER TABLE webhooks ADD COLUMN secret_rotated_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE webhooks DROP COLUMN secret_rotated_at, DROP COLUMN secret_ciphertext")
