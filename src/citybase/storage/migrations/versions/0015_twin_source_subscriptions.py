"""Subscriptions to context source registrations (``/csourceSubscriptions``).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "twin_source_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("sub_id", sa.String(length=1024), nullable=False),
        sa.Column("spec", DOC, nullable=False),
        sa.Column("context", sa.String(length=2048), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_twin_source_subscriptions"),
        sa.UniqueConstraint("tenant", "sub_id", name="uq_twin_source_subscriptions_tenant_sub_id"),
    )


def downgrade() -> None:
    op.drop_table("twin_source_subscriptions")
