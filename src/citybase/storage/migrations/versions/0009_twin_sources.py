"""The twin's context source registrations (federation with other NGSI-LD brokers).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "twin_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("registration_id", sa.String(1024), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("body", DOC, nullable=False),
        sa.Column("context", DOC, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("modified_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_twin_registrations"),
        sa.UniqueConstraint("tenant", "registration_id", name="uq_twin_registrations_tenant_registration_id"),
    )


def downgrade() -> None:
    op.drop_table("twin_registrations")
