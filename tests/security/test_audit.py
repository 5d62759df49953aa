"""The audit log is append-only and hash-chained; an edited or removed row is found."""

import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citybase.security import audit
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES


def _fill(engine, n=5):
    for i in range(n):
        audit.record(engine, actor=f"user:{i}:u", roles="data_officer", action="read.person.unmasked",
                     subject_type="person", subject_ids=[i, i + 1], fields=["id_number"], request_id=f"r{i}")


def _drop_guard(engine):
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
        else:
            c.execute(text("DROP TRIGGER audit_log_no_update"))
            c.execute(text("DROP TRIGGER audit_log_no_delete"))


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_intact_chain_verifies(empty_db):
    upgrade(empty_db.engine)
    _fill(empty_db.engine)
    with Session(empty_db.engine) as s:
        v = audit.verify(s)
    assert (v.ok, v.checked) == (True, 5)


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_the_database_refuses_to_update_or_delete_audit_rows(empty_db):
    upgrade(empty_db.engine)
    _fill(empty_db.engine, 2)
    for stmt in ("UPDATE audit_log SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1"):
        with pytest.raises(DBAPIError, match="append-only"):
            with empty_db.engine.begin() as c:
                c.execute(text(stmt))


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_an_edited_row_is_reported_as_the_first_broken_link(empty_db):
    upgrade(empty_db.engine)
    _fill(empty_db.engine)
    _drop_guard(empty_db.engine)  # what an intruder with database access would do
    with empty_db.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET subject_ids = '999' WHERE seq = 3"))
    with Session(empty_db.engine) as s:
        v = audit.verify(s)
    assert (v.ok, v.first_broken_seq, v.checked) == (False, 3, 2)
    assert "edited" in v.reason


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_removed_row_is_reported(empty_db):
    upgrade(empty_db.engine)
    _fill(empty_db.engine)
    _drop_guard(empty_db.engine)
    with empty_db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    with Session(empty_db.engine) as s:
        v = audit.verify(s)
    assert (v.ok, v.first_broken_seq) == (False, 3) and "missing" in v.reason


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_cli_audit_verify_exits_nonzero_on_a_broken_chain(empty_db, tmp_path):
    upgrade(empty_db.engine)
    _fill(empty_db.engine)
    env = {**os.environ, "CITYBASE_DATABASE_URL": empty_db.url}
    cmd = [sys.executable, "-m", "citybase.cli", "audit", "verify"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "5 entries" in ok.stdout
    _drop_guard(empty_db.engine)
    with empty_db.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4"))
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "broken at entry 4" in bad.stdout
