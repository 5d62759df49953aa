"""The `citybase` command as a user runs it."""

import json
import os
import subprocess
import sys

from sqlalchemy import create_engine, text


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
