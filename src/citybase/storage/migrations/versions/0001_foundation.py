"""Foundation: spatial base, registries, identity and audit.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    op.create_table(
        "areas",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("areas.id", name="fk_areas_parent_id_areas")),
        sa.Column("geometry", sa.Text, nullable=False),
        *[sa.Column(c, sa.Float, nullable=False) for c in
          ("min_lon", "min_lat", "max_lon", "max_lat", "center_lon", "center_lat", "area_km2")],
        sa.UniqueConstraint("code", name="uq_areas_code"),
    )
    op.create_index("ix_areas_level", "areas", ["level"])
    op.create_index("ix_areas_parent_id", "areas", ["parent_id"])
    op.create_index("ix_areas_bbox", "areas", ["min_lon", "max_lon", "min_lat", "max_lat"])

    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("address_key", sa.String(200), nullable=False),
        sa.Column("road", sa.String(64), nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("floors", sa.Integer, nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.Column("grid_id", sa.Integer, sa.ForeignKey("areas.id", name="fk_buildings_grid_id_areas"), nullable=False),
        sa.Column("community_id", sa.Integer, sa.ForeignKey("areas.id", name="fk_buildings_community_id_areas"), nullable=False),
        sa.Column("street_id", sa.Integer, sa.ForeignKey("areas.id", name="fk_buildings_street_id_areas"), nullable=False),
        sa.UniqueConstraint("code", name="uq_buildings_code"),
    )
    for col in ("address_key", "road", "grid_id", "community_id", "street_id"):
        op.create_index(f"ix_buildings_{col}", "buildings", [col])

    if pg:
        op.execute("ALTER TABLE areas ADD COLUMN geom geometry(MultiPolygon, 4326)")
        op.execute("CREATE INDEX ix_areas_geom ON areas USING GIST (geom)")
        op.execute("ALTER TABLE buildings ADD COLUMN geom geometry(Point, 4326)")
        op.execute("CREATE INDEX ix_buildings_geom ON buildings USING GIST (geom)")

    op.create_table(
        "departments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(18), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("short_name", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("area_id", sa.Integer, sa.ForeignKey("areas.id", name="fk_departments_area_id_areas")),
        sa.Column("duties", sa.Text, nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.UniqueConstraint("code", name="uq_departments_code"),
        sa.UniqueConstraint("name", name="uq_departments_name"),
    )
    op.create_index("ix_departments_kind", "departments", ["kind"])
    op.create_index("ix_departments_area_id", "departments", ["area_id"])

    op.create_table(
        "persons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("household_no", sa.String(20), nullable=False),
        sa.Column("building_id", sa.Integer, sa.ForeignKey("buildings.id", name="fk_persons_building_id_buildings")),
        sa.Column("registered_address", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("id_number", name="uq_persons_id_number"),
    )
    for col in ("name", "household_no", "building_id"):
        op.create_index(f"ix_persons_{col}", "persons", [col])

    op.create_table(
        "legal_entities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("industry_code", sa.String(4), nullable=False),
        sa.Column("industry", sa.String(32), nullable=False),
        sa.Column("building_id", sa.Integer, sa.ForeignKey("buildings.id", name="fk_legal_entities_building_id_buildings")),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("legal_rep_name", sa.String(32), nullable=False),
        sa.Column("legal_rep_id_number", sa.String(18), nullable=False),
        sa.Column("registered_capital", sa.Float, nullable=False),
        sa.Column("established_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("uscc", name="uq_legal_entities_uscc"),
    )
    for col in ("name", "entity_type", "industry_code", "building_id"):
        op.create_index(f"ix_legal_entities_{col}", "legal_entities", [col])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("departments.id", name="fk_users_department_id_departments")),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_index("ix_users_department_id", "users", ["department_id"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_api_tokens_user_id_users"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ),
        sa.Column("revoked_at", TZ),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_ids", sa.Text, nullable=False),
        sa.Column("fields", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])

    # The audit log is append-only in the database itself, not only by convention.
    if pg:
        op.execute(
            "CREATE FUNCTION citybase_audit_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION citybase_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for t in ("audit_log", "api_tokens", "users", "legal_entities", "persons", "departments", "buildings", "areas"):
        op.drop_table(t)
    if pg:
        op.execute("DROP FUNCTION IF EXISTS citybase_audit_append_only()")
