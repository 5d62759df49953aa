"""统一身份认证: user accounts linked to their registry person and to the legal entity they act for; the
一网通办 roles need no schema.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("legal_entity_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_users_person_id_persons", "persons", ["person_id"], ["id"])
        batch_op.create_foreign_key("fk_users_legal_entity_id_legal_entities", "legal_entities",
                                    ["legal_entity_id"], ["id"])
        batch_op.create_unique_constraint("uq_users_person_id", ["person_id"])
        batch_op.create_index("ix_users_legal_entity_id", ["legal_entity_id"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_legal_entity_id")
        batch_op.drop_constraint("uq_users_person_id", type_="unique")
        batch_op.drop_constraint("fk_users_legal_entity_id_legal_entities", type_="foreignkey")
        batch_op.drop_constraint("fk_users_person_id_persons", type_="foreignkey")
        batch_op.drop_column("legal_entity_id")
        batch_op.drop_column("person_id")
