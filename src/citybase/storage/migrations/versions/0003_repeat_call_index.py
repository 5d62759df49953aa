"""Index incidents by the reporter's phone: every intake looks for repeat calls.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ops_incidents_reporter_phone", "ops_incidents", ["reporter_phone"])


def downgrade() -> None:
    op.drop_index("ix_ops_incidents_reporter_phone", "ops_incidents")
