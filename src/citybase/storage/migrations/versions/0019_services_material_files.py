"""一网通办: the files applicants upload for their materials (the bytes stay in the file store under the data
folder, named by their SHA-256; the table keeps what names them).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLE = "services_material_files"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("material_key", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=12), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["services_applications.id"],
                                name=op.f("fk_services_material_files_application_id_services_applications")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services_material_files")),
    )
    op.create_index(op.f("ix_services_material_files_application_id"), TABLE, ["application_id"], unique=False)
    op.create_index(op.f("ix_services_material_files_sha256"), TABLE, ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_services_material_files_sha256"), TABLE)
    op.drop_index(op.f("ix_services_material_files_application_id"), TABLE)
    op.drop_table(TABLE)
