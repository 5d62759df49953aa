"""Signed checkpoints prove the tail of the audit log: truncation and a recomputed chain are caught, and
verification says from which checkpoint on the log cannot be trusted. Each attack is played as an intruder
with full database access would: drop the append-only triggers, then delete or rewrite rows."""

import json
import os
import secrets
import subprocess
import sys
import threading
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citybase.bus.memory import InProcessBus
from citybase.security import audit
from citybase.security.audit_keys import AuditKey, load_keyring
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data folder of its own: the key file and the anchor file are made there."""
    d = tmp_path / "data"
    monkeypatch.setenv("CITYBASE_DATA_DIR", str(d))
    monkeypatch.delenv("CITYBASE_AUDIT_KEY", raising=False)
    monkeypatch.delenv("CITYBASE_AUDIT_ANCHOR", raising=False)
    return d


@pytest.fixture
def log(empty_db, data_dir):
    upgrade(empty_db.engine)
    return empty_db.engine


def _fill(engine, n):
    for i in range(n):
        audit.record(engine, actor=f"user:{i}:u", roles="data_officer", action="read.person.unmasked",
                     subject_type="person", subject_ids=[i], fields=["id_number"], request_id=f"r{i}")


def _verify(engine, **kw):
    with Session(engine) as s:
        return audit.verify(s, **kw)


def _drop_guards(engine):
    """What an intruder with database access does first."""
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
            c.execute(text("DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints"))
        else:
            for t in ("audit_log_no_update", "audit_log_no_delete", "audit_checkpoints_no_update",
                      "audit_checkpoints_no_delete"):
                c.execute(text(f"DROP TRIGGER {t}"))


def _rewrite_from(engine, seq):
    """Edit entry ``seq`` and recompute its hash and every later one with the public SHA-256 chain."""
    with engine.begin() as c:
        c.execute(text("UPDATE audit_log SET subject_ids = '999' WHERE seq = :s"), {"s": seq})
        prev = c.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq - 1}).scalar() or audit.GENESIS
        rows = c.execute(text("SELECT seq, at, actor, roles, action, subject_type, subject_ids, fields, request_id "
                              "FROM audit_log WHERE seq >= :s ORDER BY seq"), {"s": seq}).all()
        for r in rows:
            at = datetime.fromisoformat(r.at) if isinstance(r.at, str) else r.at  # SQLite gives text
            h = audit._digest(prev, r.seq, at, r.actor, r.roles, r.action, r.subject_type, r.subject_ids,
                              r.fields, r.request_id)
            c.execute(text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE seq = :s"),
                      {"p": prev, "h": h, "s": r.seq})
            prev = h


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_an_intact_log_with_checkpoints_verifies_and_a_checkpoint_is_written_only_when_the_head_moved(log, data_dir):
    _fill(log, 3)
    first = audit.checkpoint(log)
    assert audit.checkpoint(log) is None  # nothing new
    _fill(log, 2)
    second = audit.checkpoint(log)
    assert (first.n, first.seq, second.n, second.seq) == (1, 3, 2, 5)
    v = _verify(log)
    assert (v.ok, v.checked, v.checkpoints, v.last_good.n, v.problems) == (True, 5, 2, 2, ())
    lines = [json.loads(x) for x in (data_dir / "audit-anchor.jsonl").read_text().splitlines()]
    assert [(x["n"], x["seq"], x["signature"]) for x in lines] == [(1, 3, first.signature), (2, 5, second.signature)]
    assert oct((data_dir / "audit.key").stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_entries_written_after_the_newest_checkpoint_are_reported_as_not_yet_vouched_for(log):
    _fill(log, 2)
    assert "no checkpoint yet" in _verify(log).notes[0]
    audit.checkpoint(log)
    _fill(log, 3)
    v = _verify(log)
    assert v.ok and "3 entries after checkpoint #1 (seq 2" in v.notes[0]


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_truncating_the_tail_is_caught_and_named_from_the_last_good_checkpoint(log):
    _fill(log, 5)
    audit.checkpoint(log)
    _fill(log, 3)
    audit.checkpoint(log)
    _drop_guards(log)
    with log.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq > 5"))
    v = _verify(log)
    assert v.checked == 5  # the chain that is left is consistent: only the checkpoint shows the loss
    assert (v.ok, v.first_broken_seq, v.last_good.n) == (False, 6, 1)
    assert "entries after seq 5 were removed" in v.reason
    assert "checkpoint #2 (seq 8, time " in v.reason and "last good checkpoint #1 (seq 5, time " in v.reason


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_editing_a_row_and_recomputing_every_later_hash_is_caught(log):
    _fill(log, 3)
    audit.checkpoint(log)
    _fill(log, 3)
    audit.checkpoint(log)
    _drop_guards(log)
    _rewrite_from(log, 5)
    v = _verify(log)
    assert v.checked == 6  # the recomputed chain holds by itself: only the signed checkpoint shows the edit
    assert (v.ok, v.first_broken_seq, v.last_good.n) == (False, 6, 1)
    assert "the chain was rewritten at or before seq 6" in v.reason
    assert "last good checkpoint #1 (seq 3, time " in v.reason


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_deleting_the_database_checkpoints_is_caught_by_the_anchor_file(log):
    _fill(log, 3)
    audit.checkpoint(log)
    _fill(log, 2)
    audit.checkpoint(log)
    _drop_guards(log)
    with log.begin() as c:  # remove the tail and the checkpoints that vouch for it
        c.execute(text("DELETE FROM audit_log WHERE seq > 3"))
        c.execute(text("DELETE FROM audit_checkpoints WHERE seq > 3"))
    v = _verify(log)
    assert not v.ok and "entries after seq 3 were removed" in v.reason and "checkpoint #2 (seq 5" in v.reason
    assert any("checkpoint #2" in p and "deleted from the database" in p for p in v.problems)


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_deleting_checkpoints_alone_is_caught(log):
    _fill(log, 2)
    audit.checkpoint(log)
    _drop_guards(log)
    with log.begin() as c:
        c.execute(text("DELETE FROM audit_checkpoints"))
    v = _verify(log)
    assert not v.ok and "checkpoint #1 (seq 2" in v.reason and "deleted from the database" in v.reason


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_checkpoint_edited_to_match_a_rewritten_chain_does_not_hold(log):
    _fill(log, 4)
    audit.checkpoint(log)
    _drop_guards(log)
    _rewrite_from(log, 2)
    with log.begin() as c:
        new_head = c.execute(text("SELECT hash FROM audit_log WHERE seq = 4")).scalar()
        c.execute(text("UPDATE audit_checkpoints SET head_hash = :h"), {"h": new_head})
    v = _verify(log)
    assert not v.ok
    # the anchor still has the true checkpoint; the edited database copy is reported as forged
    assert "rewritten at or before seq 4" in v.reason
    assert any("does not hold under key" in p and "forged or edited" in p for p in v.problems)


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_the_checkpoint_table_refuses_updates_and_deletes(log):
    _fill(log, 1)
    audit.checkpoint(log)
    for stmt in ("UPDATE audit_checkpoints SET seq = 7", "DELETE FROM audit_checkpoints"):
        with pytest.raises(DBAPIError, match="append-only"):
            with log.begin() as c:
                c.execute(text(stmt))


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_no_checkpoint_vouches_for_a_chain_that_is_already_broken(log):
    _fill(log, 3)
    audit.checkpoint(log)
    _fill(log, 2)
    _drop_guards(log)
    with log.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4"))
    with pytest.raises(audit.AuditChainBroken, match="broken at entry 4"):
        audit.checkpoint(log)
    with Session(log) as s:
        assert [cp.seq for cp in audit.checkpoints(s)] == [3]


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_wrong_key_fails_with_a_message_naming_the_key_id_and_a_rotated_key_still_verifies(log, monkeypatch):
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    old_id, new_id = AuditKey(bytes.fromhex(old)).id, AuditKey(bytes.fromhex(new)).id
    monkeypatch.setenv("CITYBASE_AUDIT_KEY", old)
    _fill(log, 2)
    audit.checkpoint(log)
    monkeypatch.setenv("CITYBASE_AUDIT_KEY", new)
    v = _verify(log)
    assert not v.ok and f"signed with key id {old_id}" in v.reason and new_id in v.reason
    monkeypatch.setenv("CITYBASE_AUDIT_KEY", f"{new},{old}")  # rotated: the new key signs, the old still verifies
    assert _verify(log).ok
    _fill(log, 1)
    assert audit.checkpoint(log).key_id == new_id
    assert _verify(log).checkpoints == 2


def test_the_key_file_is_made_once_even_by_processes_starting_together(tmp_path):
    ids: list[str] = []
    start = threading.Barrier(8)

    def load():
        start.wait()
        ids.append(load_keyring(tmp_path).signing.id)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["audit.key"]


def test_a_key_given_in_base64_is_accepted_and_a_short_one_refused(monkeypatch, tmp_path):
    import base64

    from citybase.security.audit_keys import AuditKeyError

    raw = secrets.token_bytes(32)
    monkeypatch.setenv("CITYBASE_AUDIT_KEY", base64.b64encode(raw).decode())
    assert load_keyring(tmp_path).signing.secret == raw
    monkeypatch.setenv("CITYBASE_AUDIT_KEY", "abcd")
    with pytest.raises(AuditKeyError, match="CITYBASE_AUDIT_KEY"):
        load_keyring(tmp_path)


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_the_app_writes_and_publishes_a_checkpoint_when_it_shuts_down(empty_db, data_dir):
    from fastapi.testclient import TestClient

    from citybase.api.app import create_app
    from citybase.core.settings import load_settings

    upgrade(empty_db.engine)
    bus = InProcessBus()
    sub = bus.subscribe(audit.CHECKPOINT_SUBJECT, "test-audit-checkpoints")
    app = create_app(load_settings(data_dir=data_dir, database_url=empty_db.url), engine=empty_db.engine, bus=bus)
    with TestClient(app) as client:
        assert client.get("/api/v1/health").status_code == 200
        _fill(empty_db.engine, 2)
    anchored = [json.loads(x) for x in (data_dir / "audit-anchor.jsonl").read_text().splitlines()]
    assert [x["seq"] for x in anchored] == [2]
    got = sub.fetch(batch=5, timeout=1.0)
    assert [(d.event.subject, d.event.data["signature"]) for d in got] == [
        (audit.CHECKPOINT_SUBJECT, anchored[0]["signature"])]


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_cli_checkpoint_then_verify_catches_a_truncated_log(empty_db, data_dir):
    upgrade(empty_db.engine)
    _fill(empty_db.engine, 4)
    env = {**os.environ, "CITYBASE_DATABASE_URL": empty_db.url, "CITYBASE_DATA_DIR": str(data_dir), "COLUMNS": "200"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "citybase.cli", "audit", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    written = cli("checkpoint")
    assert written.returncode == 0 and "written checkpoint #1 (seq 4" in written.stdout, written.stderr
    assert "none written" in cli("checkpoint").stdout
    ok = cli("verify")
    assert ok.returncode == 0 and "4 entries checked, 1 signed checkpoints hold" in ok.stdout
    _drop_guards(empty_db.engine)
    with empty_db.engine.begin() as c:
        c.execute(text("DELETE FROM audit_log WHERE seq > 2"))
    bad = cli("verify")
    assert bad.returncode == 1
    assert "cannot be trusted" in bad.stdout and "entries after seq 2 were removed" in bad.stdout
