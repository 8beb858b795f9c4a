"""Peering inventory: tenants, ASNs, neighbours, sessions, prefixes, peer observations.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ASN_CHECK = "BETWEEN 1 AND 4294967295"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenants (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
            name        text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # An ASN belongs to one tenant: it is the tenant's own network.
    op.execute(
        f"""
        CREATE TABLE autonomous_systems (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            asn         bigint NOT NULL CHECK (asn {ASN_CHECK}),
            name        text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT autonomous_systems_asn_key UNIQUE (asn),
            CONSTRAINT autonomous_systems_tenant_asn_key UNIQUE (tenant_id, asn)
        )
        """
    )
    # Upstreams (transit providers), peers and customers of the tenant's ASNs:
    # the reference the illegal-first-hop and route-leak detectors use.
    op.execute(
        f"""
        CREATE TABLE neighbor_asns (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id    bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            asn          bigint NOT NULL CHECK (asn {ASN_CHECK}),
            relationship text NOT NULL CHECK (relationship IN ('upstream', 'peer', 'customer')),
            description  text NOT NULL DEFAULT '',
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT neighbor_asns_tenant_asn_key UNIQUE (tenant_id, asn)
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE peering_sessions (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id      bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            local_asn      bigint NOT NULL,
            peer_asn       bigint NOT NULL CHECK (peer_asn {ASN_CHECK}),
            peer_address   inet NOT NULL CHECK (host(peer_address)::inet = peer_address),
            local_address  inet CHECK (host(local_address)::inet = local_address
                                       AND family(local_address) = family(peer_address)),
            afi            smallint GENERATED ALWAYS AS (family(peer_address)) STORED,
            peering_lan    cidr CHECK (family(peering_lan) = family(peer_address)
                                       AND peer_address <<= peering_lan),
            interconnect   text NOT NULL CHECK (interconnect IN ('ixp', 'pni')),
            ixp_name       text,
            description    text NOT NULL DEFAULT '',
            max_prefixes   integer CHECK (max_prefixes > 0),
            import_policy  text,
            export_policy  text,
            admin_state    text NOT NULL DEFAULT 'enabled'
                           CHECK (admin_state IN ('enabled', 'disabled', 'maintenance')),
            md5_secret_ref text,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT peering_sessions_tenant_peer_address_key UNIQUE (tenant_id, peer_address),
            -- the local ASN must be one of the tenant's own ASNs
            CONSTRAINT peering_sessions_local_asn_fkey FOREIGN KEY (tenant_id, local_asn)
                REFERENCES autonomous_systems (tenant_id, asn)
        )
        """
    )
    op.execute("CREATE INDEX peering_sessions_peer_asn_idx ON peering_sessions (peer_asn)")
    op.execute(
        """
        CREATE TABLE prefixes (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            prefix      cidr NOT NULL,
            afi         smallint GENERATED ALWAYS AS (family(prefix)) STORED,
            origin_asns bigint[] NOT NULL DEFAULT '{}',
            max_length  smallint NOT NULL,
            announced   boolean NOT NULL DEFAULT true,
            description text NOT NULL DEFAULT '',
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT prefixes_tenant_prefix_key UNIQUE (tenant_id, prefix),
            CONSTRAINT prefixes_max_length_check CHECK (
                max_length >= masklen(prefix)
                AND max_length <= CASE WHEN family(prefix) = 4 THEN 32 ELSE 128 END),
            CONSTRAINT prefixes_origins_check CHECK (
                1 <= ALL (origin_asns) AND 4294967295 >= ALL (origin_asns)
                AND (NOT announced OR cardinality(origin_asns) > 0))
        )
        """
    )
    op.execute("CREATE INDEX prefixes_prefix_gist ON prefixes USING gist (prefix inet_ops)")
    op.execute("CREATE INDEX prefixes_origin_asns_gin ON prefixes USING gin (origin_asns)")
    # How many prefixes a peer ASN announces, as seen by the route collectors
    # and the detection pipeline; max-prefix limits are checked against it.
    op.execute(
        f"""
        CREATE TABLE peer_prefix_counts (
            peer_asn     bigint NOT NULL CHECK (peer_asn {ASN_CHECK}),
            afi          smallint NOT NULL CHECK (afi IN (4, 6)),
            source       text NOT NULL,
            prefix_count integer NOT NULL CHECK (prefix_count >= 0),
            observed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (peer_asn, afi, source)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "peer_prefix_counts",
        "prefixes",
        "peering_sessions",
        "neighbor_asns",
        "autonomous_systems",
        "tenants",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
