"""The `citybase` command as a user runs it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.bus.conftest import NATS_URL, unavailable


def _cli(args, tmp_path, **env):
    full = {**os.environ, "CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_DATABASE_URL": "", "COLUMNS": "120", **env}
    return subprocess.run([sys.executable, "-m", "citybase.cli", *args], env=full, capture_output=True, text=True,
                          timeout=300)


def test_demo_without_serving_sets_up_the_city_and_tokens_once(tmp_path):
    first = _cli(["demo", "--size", "small", "--no-serve"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Demo city generated" in first.stdout and "persons" in first.stdout
    tokens = json.loads((tmp_path / "demo-tokens.json").read_text())
    assert set(tokens) >= {"admin", "dispatcher", "dataofficer", "citizen"}
    assert oct((tmp_path / "demo-tokens.json").stat().st_mode)[-3:] == "600"
    again = _cli(["demo", "--size", "small", "--no-serve"], tmp_path)
    assert again.returncode == 0 and "already there" in again.stdout
    engine = create_engine(f"sqlite:///{tmp_path / 'citybase.sqlite3'}")
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM areas WHERE level = 'district'")).scalar() == 1


def test_generate_refuses_to_overwrite_a_city_unless_reset(tmp_path):
    assert _cli(["generate", "--size", "small"], tmp_path).returncode == 0
    refused = _cli(["generate", "--size", "small"], tmp_path)
    assert refused.returncode == 1 and "--reset" in refused.stdout
    assert _cli(["generate", "--size", "small", "--reset", "--seed", "3"], tmp_path).returncode == 0


def test_unknown_size_is_a_usage_error(tmp_path):
    r = _cli(["generate", "--size", "huge"], tmp_path)
    assert r.returncode == 2 and "small or district" in (r.stdout + r.stderr)


def test_db_upgrade_reports_the_revision(tmp_path):
    from alembic.script import ScriptDirectory

    from citybase.storage.migrate import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    r = _cli(["db", "upgrade"], tmp_path)
    assert r.returncode == 0 and f"revision {head}" in r.stdout


def test_users_create_prints_a_token_that_signs_in(tmp_path):
    from fastapi.testclient import TestClient

    from citybase.api.app import create_app
    from citybase.bus.memory import InProcessBus
    from citybase.core.settings import load_settings

    r = _cli(["users", "create", "ana", "--roles", "analyst"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    created = json.loads(r.stdout)
    assert created["username"] == "ana" and created["token"].startswith("cb_")
    again = _cli(["users", "create", "ana", "--roles", "analyst"], tmp_path)
    assert again.returncode == 1 and "taken" in again.stdout
    ghost = _cli(["users", "create", "bo", "--roles", "citizen", "--person-id", "424242"], tmp_path)
    assert ghost.returncode == 1 and "person_id 424242 does not exist" in ghost.stdout
    app = create_app(load_settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'citybase.sqlite3'}"),
                     bus=InProcessBus())
    with TestClient(app) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert me.status_code == 200 and me.json()["username"] == "ana" and me.json()["roles"] == ["analyst"]


def test_train_classifier_on_a_small_corpus_reports_macro_f1(tmp_path):
    r = _cli(["ops", "train-classifier", "--corpus", "8"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "macro-F1" in r.stdout and (tmp_path / "classifier.joblib").stat().st_size > 0


def test_audit_verify_on_a_new_database_finds_the_chain_intact(tmp_path):
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    r = _cli(["audit", "verify"], tmp_path)
    assert r.returncode == 0 and "intact" in r.stdout


def test_a_wrong_setting_is_named_with_exit_2_not_a_traceback(tmp_path):
    r = _cli(["db", "upgrade"], tmp_path, CITYBASE_PORT="abc", CITYBASE_OPS_AUTO_DISPATCH_CONFIDENCE="high")
    assert r.returncode == 2
    assert "CITYBASE_PORT must be an integer port 1–65535, got 'abc'" in r.stderr
    assert "CITYBASE_OPS_AUTO_DISPATCH_CONFIDENCE must be a number from 0 to 1" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "citybase.sqlite3").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_health_and_metrics_and_logs_json_with_the_request_id(tmp_path):
    port = _free_port()
    env = {**os.environ, "CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_DATABASE_URL": "", "CITYBASE_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "citybase.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        health = None
        while health is None and proc.poll() is None:  # wait for the server to listen (it migrates first)
            try:
                health = httpx.get(f"{base}/api/v1/health", headers={"X-Request-ID": "probe-1"}, timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, proc.communicate()[1]
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["x-request-id"] == "probe-1"
        scraped = httpx.get(f"{base}/metrics", timeout=5)
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'citybase_http_requests_total{method="GET",route="/api/v1/health",status="200"} 1.0' in scraped.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    health_logs = [r for r in records if r["logger"] == "uvicorn.access" and "/api/v1/health" in r["message"]]
    assert health_logs and health_logs[0]["request_id"] == "probe-1"


def _lines(r) -> dict[str, str]:
    """The doctor's lines by check name: {'database': '✓ database: …', …}."""
    return {line.split(":", 1)[0][2:]: line for line in r.stdout.splitlines() if line[:2] in ("✓ ", "✗ ", "· ")}


def test_doctor_on_sqlite_says_to_migrate_until_the_database_is_at_head(tmp_path):
    before = _cli(["doctor"], tmp_path)
    assert before.returncode == 1
    assert _lines(before)["database"].startswith("✗") and "citybase db upgrade" in _lines(before)["database"]
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    after = _cli(["doctor"], tmp_path)
    lines = _lines(after)
    assert after.returncode == 0, after.stdout
    assert set(lines) == {"settings", "data dir", "database", "migrations", "PostGIS", "bus"}
    assert lines["migrations"].startswith("✓") and lines["PostGIS"].startswith("·") and lines["bus"].startswith("✓")


def test_doctor_reports_a_wrong_setting_as_a_finding(tmp_path):
    r = _cli(["doctor"], tmp_path, CITYBASE_PORT="abc")
    assert r.returncode == 1 and _lines(r)["settings"].startswith("✗ settings: CITYBASE_PORT must be")


def test_doctor_reports_a_database_behind_the_newest_migration(tmp_path):
    from citybase.storage.db import make_engine
    from citybase.storage.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'citybase.sqlite3'}")
    upgrade(engine, "0002")
    engine.dispose()
    r = _cli(["doctor"], tmp_path)
    assert r.returncode == 1 and "at 0002, the newest is" in _lines(r)["migrations"]
    assert "fix: run `citybase db upgrade`" in _lines(r)["migrations"]


@pytest.mark.postgres
@pytest.mark.parametrize("empty_db", ["postgresql"], indirect=True)
def test_doctor_on_postgresql_checks_migrations_and_postgis(empty_db, tmp_path):
    bare = _cli(["doctor"], tmp_path, CITYBASE_DATABASE_URL=empty_db.url)
    assert bare.returncode == 1
    assert _lines(bare)["database"].startswith("✓ database: PostgreSQL")
    assert _lines(bare)["migrations"].startswith("✗") and _lines(bare)["PostGIS"].startswith("✗")
    assert "citybase db upgrade" in _lines(bare)["PostGIS"]
    assert _cli(["db", "upgrade"], tmp_path, CITYBASE_DATABASE_URL=empty_db.url).returncode == 0
    r = _cli(["doctor"], tmp_path, CITYBASE_DATABASE_URL=empty_db.url)
    assert r.returncode == 0, r.stdout
    assert _lines(r)["PostGIS"].startswith("✓ PostGIS: PostGIS 3")


def test_doctor_names_a_postgresql_server_it_cannot_reach(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/citybase"
    r = _cli(["doctor"], tmp_path, CITYBASE_DATABASE_URL=url)
    line = _lines(r)["database"]
    assert r.returncode == 1 and line.startswith("✗ database: cannot connect to") and "CITYBASE_DATABASE_URL" in line
    assert "migrations" not in _lines(r)  # nothing to check without a database


@pytest.mark.nats
def test_doctor_reaches_nats_jetstream(tmp_path):
    from citybase.bus.nats import NatsBus

    try:  # a probe on its own streams: the deployment's default ones are not the test's to create
        probe = NatsBus(NATS_URL, stream="DOCTORPROBE", subjects_prefix="doctorprobe")
    except ConnectionError as exc:
        unavailable(f"NATS JetStream not available: {exc}")
    probe.delete_streams()
    probe.close()
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    r = _cli(["doctor"], tmp_path, CITYBASE_BUS_URL=NATS_URL)
    assert r.returncode == 0, r.stdout
    assert _lines(r)["bus"].startswith(f"✓ bus: NATS JetStream at {NATS_URL}: CITYBASE (")
    assert "CITYBASE_DLQ (" in _lines(r)["bus"]


def test_doctor_names_a_wrong_nats_port_and_what_to_do(tmp_path):
    assert _cli(["db", "upgrade"], tmp_path).returncode == 0
    r = _cli(["doctor"], tmp_path, CITYBASE_BUS_URL=f"nats://127.0.0.1:{_free_port()}")
    line = _lines(r)["bus"]
    assert r.returncode == 1 and line.startswith("✗ bus: cannot reach NATS at nats://127.0.0.1:")
    assert "nats-server -js" in line and "CITYBASE_BUS_URL" in line


def test_serve_with_several_workers_is_refused_on_sqlite_and_memory_bus(tmp_path):
    r = _cli(["serve", "--workers", "2"], tmp_path)
    assert r.returncode == 2
    assert "needs PostgreSQL and NATS" in r.stdout and "in-process bus" in r.stdout.replace("\n", " ")
