"""Electronic licences (电子证照): the type catalogue, licences, their uses and the public keys that verify them.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "licence_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=21), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("issuer_department_id", sa.Integer(), nullable=False),
        sa.Column("holder_kind", sa.String(length=8), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("validity_years", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issuer_department_id"], ["departments.id"],
                                name=op.f("fk_licence_types_issuer_department_id_departments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licence_types")),
        sa.UniqueConstraint("code", name=op.f("uq_licence_types_code")),
        sa.UniqueConstraint("key", name=op.f("uq_licence_types_key")),
    )
    op.create_index(op.f("ix_licence_types_issuer_department_id"), "licence_types", ["issuer_department_id"])
    op.create_table(
        "licences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("holder_kind", sa.String(length=8), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("legal_entity_id", sa.Integer(), nullable=True),
        sa.Column("holder_name", sa.String(length=100), nullable=False),
        sa.Column("holder_code", sa.String(length=18), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("issuer_department_id", sa.Integer(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("application_ref", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["type_id"], ["licence_types.id"], name=op.f("fk_licences_type_id_licence_types")),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_licences_person_id_persons")),
        sa.ForeignKeyConstraint(["legal_entity_id"], ["legal_entities.id"],
                                name=op.f("fk_licences_legal_entity_id_legal_entities")),
        sa.ForeignKeyConstraint(["issuer_department_id"], ["departments.id"],
                                name=op.f("fk_licences_issuer_department_id_departments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licences")),
        sa.UniqueConstraint("identifier", name=op.f("uq_licences_identifier")),
    )
    op.create_index(op.f("ix_licences_person_id"), "licences", ["person_id"])
    op.create_index(op.f("ix_licences_legal_entity_id"), "licences", ["legal_entity_id"])
    op.create_index(op.f("ix_licences_expires_on"), "licences", ["expires_on"])
    op.create_index("ix_licences_type_id_status", "licences", ["type_id", "status"])
    op.create_table(
        "licence_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("licence_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("application_ref", sa.String(length=64), nullable=True),
        sa.Column("consent_ref", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["licence_id"], ["licences.id"], name=op.f("fk_licence_uses_licence_id_licences")),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"],
                                name=op.f("fk_licence_uses_department_id_departments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licence_uses")),
    )
    op.create_index(op.f("ix_licence_uses_licence_id"), "licence_uses", ["licence_id"])
    op.create_table(
        "licence_keys",
        sa.Column("kid", sa.String(length=8), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_licence_keys")),
    )


def downgrade() -> None:
    op.drop_table("licence_keys")
    op.drop_index(op.f("ix_licence_uses_licence_id"), "licence_uses")
    op.drop_table("licence_uses")
    for ix in ("ix_licences_type_id_status", op.f("ix_licences_expires_on"), op.f("ix_licences_legal_entity_id"),
               op.f("ix_licences_person_id")):
        op.drop_index(ix, "licences")
    op.drop_table("licences")
    op.drop_index(op.f("ix_licence_types_issuer_department_id"), "licence_types")
    op.drop_table("licence_types")
