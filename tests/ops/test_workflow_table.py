"""The workflow's one table: served to clients and pages, obeyed by every step, and the events it
produces match their typed schemas. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from citybase.geo.models import Building
from citybase.ops.domain import DOMAIN
from citybase.ops.workflow.states import OPEN, TERMINAL, TRANSITIONS, Status


def _building(city, k: int) -> Building:
    with Session(city.engine) as s:  # far from the buildings test_loop reports at
        return s.query(Building).filter(Building.use == "residential").order_by(Building.id.desc()).offset(k).first()


def _handler(client, city, department_id: int) -> dict:
    admin = city.auth("admin")
    u = client.post("/api/v1/users", json={"username": f"wf-{uuid.uuid4().hex[:8]}", "display_name": "处置员",
                                           "roles": ["handler"], "department_id": department_id}, headers=admin).json()
    token = client.post(f"/api/v1/users/{u['id']}/tokens", json={}, headers=admin).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def inc_tasks(client, city, incident_id: int) -> list[dict]:
    return client.get(f"/api/v1/ops/incidents/{incident_id}", headers=city.auth("dispatcher")).json()["tasks"]


def test_the_table_is_served_to_anyone_and_names_every_action_route(client):
    table = client.get("/api/v1/ops/workflow").json()
    assert table["states"] == [s.value for s in Status]
    assert table["open"] == list(OPEN) and table["terminal"] == list(TERMINAL)
    assert table["actions"]["dispatch"]["from"] == ["received", "registered"]
    assert table["actions"]["dispatch"]["to"] == ["dispatched"]
    paths = client.get("/openapi.json").json()["paths"]
    routed = {p.rsplit("/", 1)[1] for p in paths if p.startswith("/api/v1/ops/incidents/{incident_id}/")}
    assert routed == {a for a, t in TRANSITIONS.items() if t.roles}  # the system's own steps have no route
    verify = paths["/api/v1/ops/incidents/{incident_id}/verify"]["post"]
    assert "Allowed when the incident is verifying; leads to closed or dispatched" in verify["description"]
    status_enum = client.get("/openapi.json").json()["components"]["schemas"]["Status"]["enum"]
    assert status_enum == table["states"]


def test_a_step_the_table_does_not_allow_is_refused_naming_the_states_it_allows(client, city):
    b = _building(city, 5)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": f"申请加装电梯 {uuid.uuid4().hex[:6]}", "category_code": "08007",
        "building_id": b.id}).json()["incident"]
    assert inc["status"] == "dispatched"  # the category was given: registered and dispatched at once
    r = client.post(f"/api/v1/ops/incidents/{inc['id']}/reject", json={"reason": "x"}, headers=city.auth("dispatcher"))
    assert r.status_code == 409, r.text
    assert r.json()["fix"] == "reject is possible only when the incident is received."
    r = client.post(f"/api/v1/ops/incidents/{inc['id']}/close", json={"reason": "x"}, headers=city.auth("dispatcher"))
    assert r.status_code == 409 and r.json()["fix"] == "close is possible only when the incident is verifying or registered."


def test_every_event_of_a_loop_matches_its_typed_schema(client, city):
    sub = client.app.state.bus.subscribe("citybase.ops.>", durable=f"typed-{uuid.uuid4().hex}")
    b = _building(city, 9)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": f"公共厕所很脏没人打扫 {uuid.uuid4().hex[:6]}", "category_code": "01007", "building_id": b.id,
        "reporter_phone": "13900001111"}).json()["incident"]
    handler = _handler(client, city, inc["main_department_id"])
    steps = [("accept", {}, handler), ("first-contact", {"note": "已联系"}, handler)]
    steps += [("complete", {"result": "已清洁", "task_id": t["id"]}, _handler(client, city, t["department_id"]))
              for t in inc_tasks(client, city, inc["id"])]
    steps += [("verify", {"passed": True, "note": "已整改"}, city.auth("inspector"))]
    for action, body, who in steps:
        r = client.post(f"/api/v1/ops/incidents/{inc['id']}/{action}", json=body, headers=who)
        assert r.status_code == 200, (action, r.text)
    assert r.json()["status"] == "closed"
    events = []  # the bus keeps the events of the session's earlier tests too: read until this incident's close
    while got := sub.fetch(batch=500, timeout=0.5):
        events += [d.event for d in got if d.event.data.get("incident_id") == inc["id"]]
        for d in got:
            d.ack()
    subjects = [e.subject for e in events]
    assert "citybase.ops.incident.close" in subjects and "citybase.ops.reporter.notified" in subjects
    for e in events:
        schema = DOMAIN.events[e.subject]  # every subject published is declared
        parsed = schema.model_validate(e.data)
        assert parsed.incident_id == inc["id"]
