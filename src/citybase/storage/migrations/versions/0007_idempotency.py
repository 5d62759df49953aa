"""Idempotency keys: the first answer to each (principal, Idempotency-Key), so a retry never files twice.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kernel_idempotency",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(120), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kernel_idempotency"),
        sa.UniqueConstraint("principal", "key", name="uq_kernel_idempotency_principal_key"),
    )
    op.create_index("ix_kernel_idempotency_created_at", "kernel_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_kernel_idempotency_created_at", "kernel_idempotency")
    op.drop_table("kernel_idempotency")
