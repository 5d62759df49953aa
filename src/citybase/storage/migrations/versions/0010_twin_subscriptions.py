"""NGSI-LD subscriptions of the twin: the subscriptions with their delivery record, and a revision per tenant
(an in-process matching index checks it before use).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
DOC = sa.JSON().with_variant(JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "twin_subscriptions",
        sa.Column("pk", BIGID, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("sub_id", sa.String(1024), nullable=False),
        sa.Column("spec", DOC, nullable=False),
        sa.Column("context", sa.String(2048), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("throttling", sa.Float(), nullable=True),
        sa.Column("time_interval", sa.Float(), nullable=True),
        sa.Column("next_at", TZ, nullable=True),
        sa.Column("last_queued_at", TZ, nullable=True),
        sa.Column("times_sent", sa.Integer(), nullable=False),
        sa.Column("times_failed", sa.Integer(), nullable=False),
        sa.Column("last_notification", TZ, nullable=True),
        sa.Column("last_success", TZ, nullable=True),
        sa.Column("last_failure", TZ, nullable=True),
        sa.Column("last_status", sa.String(8), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("modified_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_twin_subscriptions"),
        sa.UniqueConstraint("tenant", "sub_id", name="uq_twin_subscriptions_tenant_sub_id"),
    )
    op.create_index("ix_twin_subscriptions_next_at", "twin_subscriptions", ["next_at"])
    op.create_table(
        "twin_subscription_revisions",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name="pk_twin_subscription_revisions"),
    )


def downgrade() -> None:
    op.drop_table("twin_subscription_revisions")
    op.drop_index("ix_twin_subscriptions_next_at", "twin_subscriptions")
    op.drop_table("twin_subscriptions")
