"""Incidents remember what outside the loop made them (``source_ref``: an IoT alarm's alarm_id), unique so
that one alarm delivered twice opens one incident, and indexed so the IoT pages find an alarm's incident.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ops_incidents", sa.Column("source_ref", sa.String(length=128), nullable=True))
    op.create_index("ix_ops_incidents_source_ref", "ops_incidents", ["source_ref"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_ops_incidents_source_ref", "ops_incidents")
    with op.batch_alter_table("ops_incidents", schema=None) as batch_op:
        batch_op.drop_column("source_ref")
