"""Personal data in the incident loop and authorisation by object, on SQLite and PostgreSQL.

What a reporter writes or says (phones, ID numbers, names) is shown in full only to those who call
reporters back — dispatchers and the handling department — with an audit row, and masked for every
other reader (analysts, inspectors, other departments, the public feed); a text search cannot
confirm what is masked. Only a department with a task records 先行联系; a closure is rated once."""

from __future__ import annotations

import itertools
import json
import random
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.geo.models import Building
from citybase.ops.workflow.models import Incident
from citybase.registry.models import Department
from citybase.security.models import AuditEntry

_next = itertools.count()


@pytest.fixture
def handler_of(client, city):
    """Bearer headers of a new handler in a department (one per department and test)."""
    made: dict[int, dict] = {}

    def make(department_id: int) -> dict:
        if department_id not in made:
            made[department_id] = _user(client, city, "handler", department_id)
        return made[department_id]

    return make


def _user(client, city, role: str, department_id: int | None = None) -> dict:
    admin = city.auth("admin")
    u = client.post("/api/v1/users", headers=admin, json={"username": f"{role[:4]}-{uuid.uuid4().hex[:8]}",
                                                          "display_name": "测试", "roles": [role],
                                                          "department_id": department_id}).json()
    token = client.post(f"/api/v1/users/{u['id']}/tokens", json={}, headers=admin).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _building(city) -> Building:
    """A residential building from the far end of the list (the loop tests use the first ones)."""
    with Session(city.engine) as s:
        rows = s.scalars(select(Building).where(Building.use == "residential").order_by(Building.id.desc())
                         .limit(300)).all()
    return rows[next(_next) * 5 % len(rows)]


def _dept(city, short: str) -> int:
    with Session(city.engine) as s:
        return s.scalars(select(Department.id).where(Department.short_name == short)).one()


def _act(client, headers, inc_id: int, action: str, **body):
    return client.post(f"/api/v1/ops/incidents/{inc_id}/{action}", json=body, headers=headers)


def _phone() -> str:
    return "137" + "".join(random.choices("0123456789", k=8))


def _report(client, city, text: str, category: str = "02001", phone: str | None = None) -> dict:
    r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": text, "category_code": category, "building_id": _building(city).id,
        "reporter_name": "王建国", "reporter_phone": phone or _phone()})
    assert r.status_code == 201, r.text
    return r.json()["incident"]


def _last_audit(city) -> AuditEntry:
    with Session(city.engine) as s:
        return s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()


# ---------------------------------------------------------------- masking of free text


def test_a_hotline_text_is_masked_for_other_readers_and_shown_in_full_to_those_who_call_back(
        client, city, handler_of):
    phone, idn = _phone(), "310104199001010008"
    b = _building(city)
    r = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"), json={
        "caller_phone": phone, "caller_name": "王建国", "address": b.address.replace("上海市徐汇区", ""),
        "text": f"楼下的窨井盖不见了，请回电{phone}，我身份证{idn}，找王建国"})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    main = inc["main_department_id"]
    if inc["status"] == "received":
        _act(client, city.auth("dispatcher"), inc["id"], "register", category_code="02001")
        _act(client, city.auth("dispatcher"), inc["id"], "dispatch", main_department_id=main)
    # the handling department writes the reporter's data into its notes and results too
    assert _act(client, handler_of(main), inc["id"], "first-contact", note=f"已联系王建国（{phone}）").status_code == 200
    tasks = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=city.auth("dispatcher")).json()["tasks"]
    for t in tasks:  # the main and the assisting department
        assert _act(client, handler_of(t["department_id"]), inc["id"], "complete", task_id=t["id"],
                    result=f"已补装井盖，回访电话 {phone[:3]}-{phone[3:7]}-{phone[7:]}").status_code == 200
    done = _act(client, city.auth("inspector"), inc["id"], "verify", passed=True, note=f"现场已修复，联系人王建国 {phone}")
    assert done.json()["status"] == "closed", done.text

    secrets = (phone, phone[3:7], idn, idn[6:14], "王建国", "建国")
    readers = {"analyst": city.auth("analyst"), "inspector": city.auth("inspector"),
               "another department": handler_of(_dept(city, "教育局"))}
    for who, headers in readers.items():
        body = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=headers)
        assert body.status_code == 200, (who, body.text)
        seen = json.dumps(body.json(), ensure_ascii=False)
        assert not [s for s in secrets if s in seen], who
        d = body.json()
        assert f"{phone[:3]}****{phone[-4:]}" in d["description"] and "310104********0008" in d["description"]
        assert "找王**" in d["description"] and d["reporters"][0]["outcome"]  # masked, not dropped
        listed = client.get("/api/v1/ops/incidents", params={"q": inc["code"]}, headers=headers).json()
        assert listed["total"] == 1 and phone not in json.dumps(listed, ensure_ascii=False), who
    public = client.get(f"/open311/v2/requests/{inc['code']}.json", params={"extensions": "true"}).json()
    assert not [s for s in secrets if s in json.dumps(public, ensure_ascii=False)]

    for who, headers in {"dispatcher": city.auth("dispatcher"), "handling department": handler_of(main)}.items():
        d = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=headers).json()
        assert f"请回电{phone}，我身份证{idn}，找王建国" in d["description"], who
        assert phone in d["timeline"][-1]["reason"] or phone in json.dumps(d["timeline"], ensure_ascii=False)
        assert phone in d["reporters"][0]["outcome"] and d["reporter_phone"] == phone
        last = _last_audit(city)
        assert last.action == "read.incident_reporter.unmasked" and last.subject_ids == str(inc["id"])
        assert "free_text" in last.fields.split(",")


def test_a_text_search_cannot_confirm_what_the_caller_sees_masked(client, city, handler_of):
    phone = _phone()
    inc = _report(client, city, f"井盖松动有响声，联系人王建国，电话{phone}，身份证310104198002290017")
    main = inc["main_department_id"]
    guesses = (phone, phone[3:9], "王建国", "310104198002290017", "19800229")
    for headers in (city.auth("analyst"), city.auth("inspector"), handler_of(_dept(city, "教育局"))):
        for guess in guesses:
            r = client.get("/api/v1/ops/incidents", params={"q": guess}, headers=headers)
            assert r.status_code == 200 and inc["id"] not in [i["id"] for i in r.json()["items"]], guess
            assert r.json()["total"] == 0, guess  # no other incident holds these either
        # what they do see still finds it
        seen = client.get("/api/v1/ops/incidents", params={"q": f"电话{phone[:3]}****{phone[-4:]}"}, headers=headers)
        assert [i["id"] for i in seen.json()["items"]] == [inc["id"]]
    for headers in (city.auth("dispatcher"), handler_of(main)):
        r = client.get("/api/v1/ops/incidents", params={"q": phone}, headers=headers)
        assert [i["id"] for i in r.json()["items"]] == [inc["id"]] and r.json()["total"] == 1
        last = _last_audit(city)
        assert last.action == "read.incident_reporter.unmasked"
        with Session(city.engine) as s:
            search = s.scalars(select(AuditEntry).where(AuditEntry.action == "search.incident.by_personal_field")
                               .order_by(AuditEntry.seq.desc()).limit(1)).one()
        assert search.subject_ids == str(inc["id"]) and search.fields == "q"


# ---------------------------------------------------------------- 先行联系 by object


def _first_contact_at(city, inc_id: int):
    with Session(city.engine) as s:
        return s.get(Incident, inc_id).first_contact_at


def test_only_a_department_with_a_task_records_first_contact(client, city, handler_of):
    inc = _report(client, city, "窨井盖破损，车辆经过哐哐响")
    assert inc["status"] == "dispatched"
    main, assist, other = inc["main_department_id"], _dept(city, "水务局"), _dept(city, "教育局")
    r = _act(client, handler_of(other), inc["id"], "first-contact", note="已致电")
    assert r.status_code == 403 and "no task for your department" in r.json()["detail"] and r.json()["fix"]
    assert _first_contact_at(city, inc["id"]) is None  # it does not count toward anyone's 先行联系率
    nobody = _user(client, city, "handler")  # a handler of no department
    assert _act(client, nobody, inc["id"], "first-contact", note="已致电").status_code == 403
    assert _act(client, handler_of(assist), inc["id"], "first-contact", note="协办已致电").status_code == 200
    assert _first_contact_at(city, inc["id"]) is not None
    assert _act(client, handler_of(main), inc["id"], "first-contact", note="已致电").status_code == 200
    assert _act(client, city.auth("admin"), inc["id"], "first-contact", note="代为登记").status_code == 200


# ---------------------------------------------------------------- one rating per closure


def _close(client, city, handler_of, inc: dict) -> None:
    r = _act(client, handler_of(inc["main_department_id"]), inc["id"], "complete", result="已处理")
    assert r.json()["status"] == "closed", r.text  # 09007 needs no verification


def test_a_closure_is_rated_once(client, city, handler_of):
    inc = _report(client, city, "商户占道经营堆放杂物", category="09007")
    _close(client, city, handler_of, inc)
    dispatcher = city.auth("dispatcher")
    assert _act(client, dispatcher, inc["id"], "rate", rating="满意").status_code == 200
    for rating in ("基本满意", "不满意", "满意"):
        r = _act(client, dispatcher, inc["id"], "rate", rating=rating)
        assert r.status_code == 409 and "already rated (满意)" in r.json()["detail"], r.text
        assert r.json()["fix"]
    d = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=dispatcher).json()
    assert d["status"] == "closed" and d["satisfaction"] == "满意" and d["reopen_count"] == 0
    assert [e["action"] for e in d["timeline"]].count("rate") == 1


def test_a_reopened_incident_closed_again_is_rated_again_once(client, city, handler_of):
    inc = _report(client, city, "小区门口有人摆摊卖菜", category="09007")
    _close(client, city, handler_of, inc)
    dispatcher = city.auth("dispatcher")
    r = _act(client, dispatcher, inc["id"], "rate", rating="不满意", comment="还在摆")
    assert r.json()["status"] == "registered" and r.json()["reopen_count"] == 1
    assert _act(client, dispatcher, inc["id"], "rate", rating="不满意").status_code == 409  # not closed now
    _act(client, dispatcher, inc["id"], "dispatch", main_department_id=inc["main_department_id"])
    _close(client, city, handler_of, inc)
    assert _act(client, dispatcher, inc["id"], "rate", rating="基本满意").status_code == 200
    r = _act(client, dispatcher, inc["id"], "rate", rating="不满意")
    assert r.status_code == 409 and "already rated (基本满意)" in r.json()["detail"]
    d = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=dispatcher).json()
    assert d["status"] == "closed" and d["reopen_count"] == 1 and d["satisfaction"] == "基本满意"


def test_only_the_reporter_or_staff_on_their_behalf_rate(client, city, handler_of):
    b = _building(city)
    r = client.post("/open311/v2/requests.json", data={
        "api_key": city.tokens["citizen"], "service_code": "09007", "lat": b.lat, "long": b.lon,
        "description": f"人行道上堆满纸箱（{uuid.uuid4().hex[:8]}）"})
    assert r.status_code == 200, r.text
    with Session(city.engine) as s:
        inc = s.scalars(select(Incident).where(Incident.code == r.json()[0]["service_request_id"])).one()
        inc = {"id": inc.id, "main_department_id": inc.main_department_id}
    _close(client, city, handler_of, inc)
    stranger = _user(client, city, "citizen")
    r = _act(client, stranger, inc["id"], "rate", rating="不满意")
    assert r.status_code == 403 and "only a reporter" in r.json()["detail"]
    assert _act(client, handler_of(inc["main_department_id"]), inc["id"], "rate", rating="满意").status_code == 403
    assert _act(client, city.auth("citizen"), inc["id"], "rate", rating="满意").status_code == 200
    assert _act(client, city.auth("citizen"), inc["id"], "rate", rating="不满意").status_code == 409
