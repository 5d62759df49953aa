"""Subscriptions to context source registrations are notified: the delivery record of an entity subscription
(timesSent … status) and the periodic schedule (timeInterval) on ``twin_source_subscriptions`` too.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
TABLE = "twin_source_subscriptions"


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_interval", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("next_at", TZ, nullable=True))
        batch_op.add_column(sa.Column("times_sent", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("times_failed", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_notification", TZ, nullable=True))
        batch_op.add_column(sa.Column("last_success", TZ, nullable=True))
        batch_op.add_column(sa.Column("last_failure", TZ, nullable=True))
        batch_op.add_column(sa.Column("last_status", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
    with op.batch_alter_table(TABLE, schema=None) as batch_op:  # the defaults only filled the existing rows
        batch_op.alter_column("times_sent", server_default=None)
        batch_op.alter_column("times_failed", server_default=None)
    op.create_index("ix_twin_source_subscriptions_next_at", TABLE, ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_twin_source_subscriptions_next_at", TABLE)
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        for name in ("last_error", "last_status", "last_failure", "last_success", "last_notification",
                     "times_failed", "times_sent", "next_at", "time_interval"):
            batch_op.drop_column(name)
