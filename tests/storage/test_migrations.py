"""The same Alembic migrations build the schema the models describe, on both engines."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from citybase.kernel.domain import load_models
from citybase.storage.db import Base
from citybase.storage.migrate import current_revision, downgrade_all, upgrade
from tests.conftest import ENGINES

load_models()  # every domain's tables, through the descriptors
ENGINE_ONLY = {"geom"}  # PostGIS columns kept outside the models on purpose


def _include(obj, name, type_, reflected, compare_to):
    if type_ == "column" and name in ENGINE_ONLY:
        return False
    if type_ == "unique_constraint" and name == "uq_twin_history_instance_id":
        return False  # on PostgreSQL it includes the partition key (recorded_at), as partitioning requires
    if type_ == "index" and name and name.endswith(("_geom", "_gin")):  # PostGIS and JSONB GIN, engine-only
        return False
    if type_ == "table" and (name in ("spatial_ref_sys", "alembic_version") or name.startswith("twin_history_")):
        return False  # PostGIS's own, Alembic's, and the monthly partitions of the twin's history
    return True


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_migrated_schema_matches_the_models(empty_db):
    upgrade(empty_db.engine)
    assert current_revision(empty_db.engine) is not None
    with empty_db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _include, "compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_upgrade_is_idempotent_and_downgrade_removes_everything(empty_db):
    upgrade(empty_db.engine)
    upgrade(empty_db.engine)
    downgrade_all(empty_db.engine)
    tables = set(inspect(empty_db.engine).get_table_names()) - {"alembic_version", "spatial_ref_sys"}
    assert tables == set()
    upgrade(empty_db.engine)
    assert "persons" in inspect(empty_db.engine).get_table_names()


@pytest.mark.postgres
@pytest.mark.parametrize("empty_db", ["postgresql"], indirect=True)
def test_postgres_has_postgis_geometry_columns(empty_db):
    upgrade(empty_db.engine)
    with empty_db.engine.connect() as conn:
        version = conn.execute(text("SELECT postgis_version()")).scalar()
        cols = conn.execute(text(
            "SELECT f_table_name, type FROM geometry_columns ORDER BY f_table_name")).all()
    assert version
    assert [(t, ty) for t, ty in cols] == [("areas", "MULTIPOLYGON"), ("buildings", "POINT"),
                                           ("twin_entities", "GEOMETRY")]
