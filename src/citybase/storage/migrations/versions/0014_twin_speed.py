"""The twin's entities indexed by (tenant, pk): a query of a tenant walks its entities in creation order (the
order of every answer) and stops at ``limit``, rather than evaluating ``q`` on every entity of the tenant and
sorting what matched.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_twin_entities_tenant_pk", "twin_entities", ["tenant", "pk"])


def downgrade() -> None:
    op.drop_index("ix_twin_entities_tenant_pk", "twin_entities")
