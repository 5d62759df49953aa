"""The twin (NGSI-LD): tenants, entities, the history of attribute instances, JSON-LD @contexts.

PostgreSQL adds a PostGIS ``geom`` of each entity's location (GiST) and GIN indexes on the attributes and
types (jsonb_path_ops), so that ``q``, ``type`` and ``geoQ`` are served by indexes.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
DOC = sa.JSON().with_variant(JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "twin_tenants",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_twin_tenants"),
    )
    op.create_table(
        "twin_entities",
        sa.Column("pk", BIGID, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(1024), nullable=False),
        sa.Column("types", DOC, nullable=False),
        sa.Column("scopes", DOC, nullable=True),
        sa.Column("attrs", DOC, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("modified_at", TZ, nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=True),
        sa.Column("min_lat", sa.Float(), nullable=True),
        sa.Column("max_lon", sa.Float(), nullable=True),
        sa.Column("max_lat", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name="pk_twin_entities"),
        sa.UniqueConstraint("tenant", "entity_id", name="uq_twin_entities_tenant_entity_id"),
    )
    op.create_index("ix_twin_entities_bbox", "twin_entities", ["tenant", "min_lon", "max_lon", "min_lat", "max_lat"])
    op.create_table(
        "twin_history",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(1024), nullable=False),
        sa.Column("types", DOC, nullable=False),
        sa.Column("attr", sa.String(1024), nullable=False),
        sa.Column("dataset_id", sa.String(1024), nullable=True),
        sa.Column("instance_id", sa.String(80), nullable=False),
        sa.Column("observed_at", TZ, nullable=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("instance", DOC, nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_twin_history"),
        sa.UniqueConstraint("instance_id", name="uq_twin_history_instance_id"),
    )
    op.create_index("ix_twin_history_entity", "twin_history", ["tenant", "entity_id", "attr", "recorded_at"])
    op.create_index("ix_twin_history_recorded_at", "twin_history", ["recorded_at"])
    op.create_table(
        "twin_contexts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ, nullable=True),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_twin_contexts"),
        sa.UniqueConstraint("url", name="uq_twin_contexts_url"),
    )
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        op.execute("ALTER TABLE twin_entities ADD COLUMN geom geometry(Geometry, 4326)")
        op.execute("CREATE INDEX ix_twin_entities_geom ON twin_entities USING GIST (geom)")
        op.execute("CREATE INDEX ix_twin_entities_attrs_gin ON twin_entities USING GIN (attrs jsonb_path_ops)")
        op.execute("CREATE INDEX ix_twin_entities_types_gin ON twin_entities USING GIN (types jsonb_path_ops)")


def downgrade() -> None:
    op.drop_table("twin_contexts")
    op.drop_index("ix_twin_history_recorded_at", "twin_history")
    op.drop_index("ix_twin_history_entity", "twin_history")
    op.drop_table("twin_history")
    op.drop_index("ix_twin_entities_bbox", "twin_entities")
    op.drop_table("twin_entities")
    op.drop_table("twin_tenants")
