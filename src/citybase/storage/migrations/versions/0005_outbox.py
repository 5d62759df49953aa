"""The kernel's transactional outbox and the events each consumer has processed.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kernel_outbox",
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("published_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_kernel_outbox"),
        sa.UniqueConstraint("event_id", name="uq_kernel_outbox_event_id"),
    )
    op.create_index("ix_kernel_outbox_published_at_seq", "kernel_outbox", ["published_at", "seq"])
    op.create_table(
        "kernel_processed",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("processed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kernel_processed"),
        sa.UniqueConstraint("consumer", "event_id", name="uq_kernel_processed_consumer_event"),
    )
    op.create_index("ix_kernel_processed_processed_at", "kernel_processed", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_kernel_processed_processed_at", "kernel_processed")
    op.drop_table("kernel_processed")
    op.drop_index("ix_kernel_outbox_published_at_seq", "kernel_outbox")
    op.drop_table("kernel_outbox")
