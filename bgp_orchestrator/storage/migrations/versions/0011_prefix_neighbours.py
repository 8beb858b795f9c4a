"""A monitored prefix may name its own upstreams and peers.

An operator who monitors its customers' prefixes has other first hops for each
of them than for its own: the tenant's neighbour list stays the default, and a
prefix whose ``upstream_asns`` or ``peer_asns`` is not empty uses those instead
(for itself and its more-specifics). Empty arrays for existing rows: nothing
changes for them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE prefixes "
        "ADD COLUMN upstream_asns bigint[] NOT NULL DEFAULT '{}', "
        "ADD COLUMN peer_asns bigint[] NOT NULL DEFAULT '{}', "
        "ADD CONSTRAINT prefixes_neighbour_asns_range CHECK ("
        "1 <= ALL (upstream_asns) AND 4294967295 >= ALL (upstream_asns) "
        "AND 1 <= ALL (peer_asns) AND 4294967295 >= ALL (peer_asns) "
        "AND cardinality(upstream_asns) <= 64 AND cardinality(peer_asns) <= 64)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE prefixes DROP CONSTRAINT IF EXISTS prefixes_neighbour_asns_range, "
        "DROP COLUMN IF EXISTS peer_asns, DROP COLUMN IF EXISTS upstream_asns"
    )
