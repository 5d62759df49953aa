"""Demo accounts: a new demo start revokes the previous demo tokens and issues ones that expire; tokens an
admin issued stay valid. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.core.timeutil import utcnow
from citybase.demo.accounts import DEMO_TOKEN_DAYS, create_demo_users
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES


def _me(client: TestClient, token: str) -> int:
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_demo_start_revokes_the_last_demo_tokens_and_issues_expiring_ones(empty_db, tmp_path):
    upgrade(empty_db.engine)
    client = TestClient(create_app(engine=empty_db.engine, bus=InProcessBus()), headers={"Accept-Language": "en"})
    first = create_demo_users(empty_db.engine, tmp_path)
    assert all(_me(client, t) == 200 for t in first.values())
    admin = {"Authorization": f"Bearer {first['admin']}"}
    users = {u["username"]: u["id"] for u in client.get("/api/v1/users", headers=admin).json()}
    kept = client.post(f"/api/v1/users/{users['dispatcher']}/tokens", json={"name": "ops script"},
                       headers=admin).json()["token"]

    second = create_demo_users(empty_db.engine, tmp_path)
    assert set(second) == set(first) and not set(second.values()) & set(first.values())
    assert json.loads((tmp_path / "demo-tokens.json").read_text()) == second
    for user, old in first.items():
        r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401 and "revoked" in r.json()["detail"], (user, r.text)
    assert all(_me(client, t) == 200 for t in second.values())
    assert _me(client, kept) == 200  # an admin's token is not the demo's to revoke

    listed = client.get(f"/api/v1/users/{users['dispatcher']}/tokens",
                        headers={"Authorization": f"Bearer {second['admin']}"}).json()
    demo = [t for t in listed if t["name"] == "demo" and t.get("revoked_at") is None]
    assert len(demo) == 1 and demo[0]["expires_at"] is not None
    left = datetime.fromisoformat(demo[0]["expires_at"]) - utcnow()
    assert timedelta(days=DEMO_TOKEN_DAYS - 1) < left <= timedelta(days=DEMO_TOKEN_DAYS)
    assert [t for t in listed if t["name"] == "ops script"][0]["expires_at"] is None
