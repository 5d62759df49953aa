"""一件事 bundles versioned like items: what a bundle says (name, description, applicant kind, members and their
dependencies) moves into ``services_bundle_versions``, each existing bundle becoming its version 1; an
application keeps the bundle version it was started on (``bundle_version_id``, version 1 for those there
already). And the KPIs' index on the parts' item code.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

MOVED = ("name", "description", "applicant_kind", "members")


FK = "fk_services_applications_bundle_version_id"  # the convention's name is over 63 characters


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # Plain ALTER TABLE on both engines (SQLite ≥ 3.35 drops columns in place): a batch copy of
    # services_bundles or services_applications would drop a table that other tables' rows refer to, which
    # SQLite refuses with its foreign keys on (and they cannot be turned off inside the migration's transaction).
    op.create_table(
        "services_bundle_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("applicant_kind", sa.String(length=8), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["bundle_id"], ["services_bundles.id"],
                                name=op.f("fk_services_bundle_versions_bundle_id_services_bundles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services_bundle_versions")),
        sa.UniqueConstraint("bundle_id", "version", name="uq_services_bundle_versions_bundle_id_version"),
    )
    op.create_index(op.f("ix_services_bundle_versions_bundle_id"), "services_bundle_versions", ["bundle_id"])
    op.execute("INSERT INTO services_bundle_versions (bundle_id, version, name, description, applicant_kind, "
               "members, created_at, created_by) SELECT id, 1, name, description, applicant_kind, members, "
               "created_at, 'system' FROM services_bundles ORDER BY id")
    op.add_column("services_bundles", sa.Column("current_version", sa.Integer(), nullable=False, server_default="1"))
    if not _sqlite():  # the default only filled the existing rows (SQLite cannot drop it without a copy)
        op.alter_column("services_bundles", "current_version", server_default=None)
    for name in MOVED:
        op.execute(f"ALTER TABLE services_bundles DROP COLUMN {name}")
    if _sqlite():
        op.execute(f"ALTER TABLE services_applications ADD COLUMN bundle_version_id INTEGER CONSTRAINT {FK} "
                   "REFERENCES services_bundle_versions (id)")
    else:
        op.add_column("services_applications", sa.Column("bundle_version_id", sa.Integer(), nullable=True))
        op.create_foreign_key(FK, "services_applications", "services_bundle_versions", ["bundle_version_id"], ["id"])
    op.execute("UPDATE services_applications SET bundle_version_id = (SELECT v.id FROM services_bundle_versions v "
               "WHERE v.bundle_id = services_applications.bundle_id AND v.version = 1) WHERE bundle_id IS NOT NULL")
    op.create_index("ix_services_parts_item_code", "services_parts", ["item_code"])


def downgrade() -> None:
    op.drop_index("ix_services_parts_item_code", "services_parts")
    if not _sqlite():
        op.drop_constraint(FK, "services_applications", type_="foreignkey")
    with op.batch_alter_table("services_applications", schema=None) as batch_op:  # SQLite: a copy, without it
        batch_op.drop_column("bundle_version_id")
    for name, type_, default in (("name", sa.String(length=100), ""), ("description", sa.Text(), ""),
                                 ("applicant_kind", sa.String(length=8), "any"), ("members", sa.Text(), "[]")):
        op.add_column("services_bundles", sa.Column(name, type_, nullable=False, server_default=default))
        op.execute(f"UPDATE services_bundles SET {name} = (SELECT v.{name} FROM services_bundle_versions v "
                   "WHERE v.bundle_id = services_bundles.id AND v.version = services_bundles.current_version)")
    op.execute("ALTER TABLE services_bundles DROP COLUMN current_version")
    op.drop_index(op.f("ix_services_bundle_versions_bundle_id"), "services_bundle_versions")
    op.drop_table("services_bundle_versions")
