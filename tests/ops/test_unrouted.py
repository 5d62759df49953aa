"""A report is never refused for want of a rule: with every responsibility rule retired it is taken,
waits for a dispatcher (no department, the routing says why in the reader's language), and a dispatcher
sends it to a department by name. A private city per engine, so the shared one keeps its rules."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.demo.accounts import create_demo_users
from citybase.demo.generator import generate
from citybase.geo.models import Building
from citybase.geo.service import reset_caches
from citybase.registry.models import Department
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES


@pytest.fixture
def bare_city(empty_db, tmp_path):
    """A small city of its own whose every routing rule an admin has retired; (client, headers by user)."""
    upgrade(empty_db.engine)
    generate(empty_db.engine, size="small", seed=11)
    tokens = create_demo_users(empty_db.engine, tmp_path)
    reset_caches()
    client = TestClient(create_app(engine=empty_db.engine, bus=InProcessBus()), headers={"Accept-Language": "en"})
    auth = {u: {"Authorization": f"Bearer {t}"} for u, t in tokens.items()}
    rules = client.get("/api/v1/ops/rules", headers=auth["admin"]).json()
    assert rules
    for r in rules:
        assert client.delete(f"/api/v1/ops/rules/{r['id']}", headers=auth["admin"]).status_code == 200
    assert client.get("/api/v1/ops/rules", headers=auth["admin"]).json() == []
    yield empty_db, client, auth
    reset_caches()


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_report_no_rule_covers_waits_for_a_dispatcher_who_names_the_department(bare_city):
    db, client, auth = bare_city
    with Session(db.engine) as s:
        b = s.query(Building).order_by(Building.id).first()
        house = s.query(Department).filter(Department.short_name == "房管局").one().id

    # An explicit category would be dispatched at once if a rule covered it: here it waits.
    r = client.post("/api/v1/ops/incidents", headers=auth["dispatcher"], json={
        "channel": "app", "description": "路灯不亮", "category_code": "02002", "building_id": b.id})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["status"] == "received" and inc["main_department_id"] is None
    assert "no responsibility rule covers category 02002" in inc["routing"]["why"]
    assert inc["routing"]["rule_id"] is None

    # The reader's language: the same stored reason in Chinese.
    zh = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers={**auth["dispatcher"], "Accept-Language": "zh"})
    assert "没有覆盖类别 02002 的权责规则" in zh.json()["routing"]["why"]

    # The public channel too: Open311 takes it (no 4xx for want of a rule).
    o = client.post("/open311/v2/requests.json", data={
        "api_key": auth["citizen"]["Authorization"].split()[1], "service_code": "02002", "description": "小区门口路灯坏了", "lat": b.lat, "long": b.lon})
    assert o.status_code in (200, 201), o.text

    # Dispatching without naming a department is refused with a reason, not a 500.
    r = client.post(f"/api/v1/ops/incidents/{inc['id']}/dispatch", headers=auth["dispatcher"], json={})
    assert r.status_code == 422, r.text
    assert "names a department" in r.json()["detail"] and "main_department_id" in r.json()["fix"]
    assert client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=auth["dispatcher"]).json()["status"] == "received"

    # The dispatcher chooses: dispatched to that department, with its task.
    r = client.post(f"/api/v1/ops/incidents/{inc['id']}/dispatch", headers=auth["dispatcher"],
                    json={"main_department_id": house, "assist_department_ids": []})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "dispatched" and r.json()["main_department_id"] == house
    detail = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=auth["dispatcher"]).json()
    assert [e["action"] for e in detail["timeline"]] == ["receive", "register", "dispatch"]
    assert [(t["department_id"], t["role"]) for t in detail["tasks"]] == [(house, "main")]
