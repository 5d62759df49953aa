"""Safe concurrent work: incident versions (optimistic locking), one supervision per missed deadline,
and the kernel's lease table (one leader per timer across processes).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ops_incidents", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))

    op.add_column("ops_supervisions", sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE ops_supervisions SET deadline_at = (SELECT i.deadline_at FROM ops_incidents i "
               "WHERE i.id = ops_supervisions.incident_id)")
    op.execute("UPDATE ops_supervisions SET deadline_at = created_at WHERE deadline_at IS NULL")
    # Supervisions raised twice for the same missed deadline (the race this revision closes): keep the first.
    op.execute("DELETE FROM ops_supervisions WHERE id NOT IN "
               "(SELECT MIN(id) FROM ops_supervisions GROUP BY incident_id, deadline_at)")
    with op.batch_alter_table("ops_supervisions", schema=None) as batch_op:
        batch_op.alter_column("deadline_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_unique_constraint("uq_ops_supervisions_overdue_period", ["incident_id", "deadline_at"])

    op.create_table(
        "kernel_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kernel_leases")),
    )


def downgrade() -> None:
    op.drop_table("kernel_leases")
    with op.batch_alter_table("ops_supervisions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ops_supervisions_overdue_period", type_="unique")
        batch_op.drop_column("deadline_at")
    with op.batch_alter_table("ops_incidents", schema=None) as batch_op:
        batch_op.drop_column("version")
