"""The closed incident loop end to end through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.geo.models import Area, Building
from citybase.ops.notifications.models import Reporter
from citybase.ops.workflow import deadlines
from citybase.ops.workflow.models import Incident
from citybase.registry.models import Department


@pytest.fixture
def staff(client, city):
    """Tokens for a handler in any department (created on demand) and the demo users."""
    made: dict[int, dict] = {}

    def handler_of(department_id: int) -> dict:
        if department_id not in made:
            admin = city.auth("admin")
            u = client.post("/api/v1/users", json={"username": f"h-{uuid.uuid4().hex[:8]}", "display_name": "处置员",
                                                   "roles": ["handler"], "department_id": department_id},
                            headers=admin).json()
            tok = client.post(f"/api/v1/users/{u['id']}/tokens", json={}, headers=admin).json()["token"]
            made[department_id] = {"Authorization": f"Bearer {tok}"}
        return made[department_id]

    return handler_of


def _buildings(city, n=200, use="residential"):
    with Session(city.engine) as s:
        return s.query(Building).filter(Building.use == use).order_by(Building.id).limit(n).all()


def _dept(city, short):
    with Session(city.engine) as s:
        return s.query(Department).filter(Department.short_name == short).one()


def _act(client, city, inc_id, action, who="dispatcher", headers=None, **body):
    r = client.post(f"/api/v1/ops/incidents/{inc_id}/{action}", json=body, headers=headers or city.auth(who))
    return r


_used = iter(range(10_000))


def _fresh_building(city):
    """A building no other test reported at, so duplicates do not cross tests."""
    return _buildings(city, 400)[next(_used) * 3 % 400]


def test_hotline_call_is_located_classified_and_routed(client, city):
    b = _fresh_building(city)
    r = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"), json={
        "caller_phone": "13911110001", "caller_name": "王先生", "text": "楼下的窨井盖不见了，晚上走路很危险",
        "address": b.address.replace("上海市徐汇区", "")})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["channel"] == "hotline" and inc["code"].startswith(utcnow().strftime("%Y")[:2])
    assert inc["category_code"] == "02001" and inc["suggested_code"] == "02001"
    assert (inc["lon"], inc["lat"]) == (b.lon, b.lat) and inc["grid_id"] == b.grid_id
    route = client.get("/api/v1/ops/route", params={"category_code": "02001", "lon": b.lon, "lat": b.lat},
                       headers=city.auth("dispatcher")).json()
    assert inc["main_department_id"] == route["main_department_id"] == _dept(city, "建管委").id
    assert inc["reporter_phone"] == "13911110001"  # the dispatcher calls back; the read is audited


def test_reporter_contact_is_masked_for_analysts(client, city):
    b = _fresh_building(city)
    r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "路灯坏了好几天", "category_code": "02002", "building_id": b.id,
        "reporter_name": "李四", "reporter_phone": "13800001111"})
    inc = r.json()["incident"]
    seen = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=city.auth("analyst")).json()
    assert seen["reporter_phone"] == "138****1111" and seen["reporters"][0]["phone"] == "138****1111"


def test_full_loop_with_joint_handling_verification_rating(client, city, staff):
    b = _fresh_building(city)
    r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "窨井盖破损，车辆经过有响声", "category_code": "02001", "building_id": b.id,
        "reporter_phone": "13911110002"})
    inc = r.json()["incident"]
    # an explicit category is certain: the system registers and dispatches at once
    assert inc["status"] == "dispatched" and inc["deadline_at"] is not None
    detail = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=city.auth("dispatcher")).json()
    roles = {(t["department_id"], t["role"]) for t in detail["tasks"]}
    main, assist = _dept(city, "建管委").id, _dept(city, "水务局").id
    assert roles == {(main, "main"), (assist, "assist")}
    assert [e["action"] for e in detail["timeline"]] == ["receive", "register", "dispatch"]
    # each department accepts and completes its own task; the incident waits for both
    assert _act(client, city, inc["id"], "accept", headers=staff(main)).json()["status"] == "handling"
    d = _act(client, city, inc["id"], "complete", headers=staff(main), result="已更换井盖").json()
    assert d["status"] == "handling"
    r = _act(client, city, inc["id"], "complete", headers=staff(assist), result="排水管线检查正常")
    assert r.json()["status"] == "verifying"
    # a failed verification sends the work back to both departments
    r = _act(client, city, inc["id"], "verify", who="inspector", passed=False, note="井盖仍松动")
    assert r.json()["status"] == "dispatched" and r.json()["reopen_count"] == 1
    for dept in (main, assist):
        _act(client, city, inc["id"], "complete", headers=staff(dept), result="已加固")
    r = _act(client, city, inc["id"], "verify", who="inspector", passed=True, note="现场核查已修复")
    closed = r.json()
    assert closed["status"] == "closed" and closed["closed_at"]
    assert closed["reporters"][0]["notified_at"] and "已办结" in closed["reporters"][0]["outcome"]
    # the reporter is unhappy: it is reopened for review
    r = _act(client, city, inc["id"], "rate", rating="不满意", comment="还是有响声")
    assert r.json()["status"] == "registered" and r.json()["satisfaction"] == "不满意"
    actions = [e["action"] for e in r.json()["timeline"]]
    assert actions[-1] == "reopen" and "verify_failed" in actions
    assert all(e["actor"] and e["at"] for e in r.json()["timeline"])


def test_rating_satisfied_keeps_it_closed(client, city, staff):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "有人占道设摊卖水果", "category_code": "09007", "building_id": b.id}).json()["incident"]
    dept = inc["main_department_id"]
    _act(client, city, inc["id"], "complete", headers=staff(dept), result="已协调退款")
    got = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=city.auth("dispatcher")).json()
    assert got["status"] == "closed"  # 消费维权 needs no on-site verification
    r = _act(client, city, inc["id"], "rate", rating="满意")
    assert r.json()["status"] == "closed" and r.json()["satisfaction"] == "满意"
    assert _act(client, city, inc["id"], "rate", rating="很好").status_code == 422


def test_return_goes_back_to_the_dispatcher_with_the_reason(client, city, staff):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "路面有个大坑", "category_code": "02003", "building_id": b.id}).json()["incident"]
    dept = inc["main_department_id"]
    r = _act(client, city, inc["id"], "return", headers=staff(dept), reason="属小区内部道路，非市政道路")
    body = r.json()
    assert body["status"] == "registered" and body["return_count"] == 1
    assert body["timeline"][-1]["reason"] == "属小区内部道路，非市政道路"
    assert "returned" in {t["status"] for t in body["tasks"]}
    assert not {t["status"] for t in body["tasks"]} & {"pending", "accepted"}  # nobody works on it now
    house = _dept(city, "房管局").id
    r = _act(client, city, inc["id"], "dispatch", main_department_id=house, assist_department_ids=[])
    assert r.json()["status"] == "dispatched" and r.json()["main_department_id"] == house


def test_a_handler_cannot_act_on_another_departments_task(client, city, staff):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "路面坑洼", "category_code": "02003", "building_id": b.id}).json()["incident"]
    other = _dept(city, "教育局").id
    r = _act(client, city, inc["id"], "accept", headers=staff(other))
    assert r.status_code == 409 and "no open task for you" in r.json()["detail"]


def test_illegal_steps_are_refused_and_say_what_is_possible(client, city):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "路灯不亮", "category_code": "02002", "building_id": b.id}).json()["incident"]
    r = _act(client, city, inc["id"], "close", reason="想直接结案")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert "while it is dispatched" in r.json()["detail"] and "verifying" in r.json()["fix"]
    assert _act(client, city, inc["id"], "reject", reason="x").status_code == 409
    assert _act(client, city, inc["id"], "suspend").status_code == 422  # no reason
    assert _act(client, city, 999999, "register").status_code == 404
    r = _act(client, city, inc["id"], "accept")  # a dispatcher is not a handler
    assert r.status_code == 403


def test_rejection_needs_a_reason_and_tells_the_reporter(client, city):
    b = _fresh_building(city)
    r = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"), json={
        "caller_phone": "13911110003", "text": "想问一下今天天气怎么样", "address": b.address})
    inc = r.json()["incident"]
    assert inc["status"] == "received"  # not certain: waits for a person
    assert _act(client, city, inc["id"], "reject").status_code == 422
    r = _act(client, city, inc["id"], "reject", reason="非政务服务事项")
    assert r.json()["status"] == "rejected"
    assert r.json()["reporters"][0]["outcome"] == "不予立案: 非政务服务事项"


def test_register_with_a_corrected_category_reroutes_and_keeps_feedback(client, city):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"), json={
        "caller_phone": "13911110004", "text": "门口有一摊东西堆着好几天了", "address": b.address}).json()["incident"]
    r = _act(client, city, inc["id"], "register", category_code="08002", priority="low")
    body = r.json()
    assert body["status"] == "registered" and body["category_code"] == "08002" and body["priority"] == "low"
    assert body["main_department_id"] == _dept(city, "房管局").id
    with Session(city.engine) as s:
        fb = s.execute(text("SELECT chosen_code FROM ops_classifier_feedback WHERE incident_id = :i"),
                       {"i": inc["id"]}).scalar()
    assert fb == "08002"


def test_duplicate_report_nearby_is_merged_and_both_reporters_hear_the_outcome(client, city, staff):
    b = _fresh_building(city)
    first = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "小区门口井盖缺失，很危险", "category_code": "02001", "building_id": b.id,
        "reporter_phone": "13911110005"}).json()
    second = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "小区门口的井盖缺失了，很危险", "category_code": "02001", "lon": b.lon + 0.00005,
        "lat": b.lat, "reporter_phone": "13911110006"}).json()
    assert second["merged_into"] == first["incident"]["code"]
    assert second["incident"]["status"] == "merged" and second["incident"]["parent_id"] == first["incident"]["id"]
    parent = client.get(f"/api/v1/ops/incidents/{first['incident']['id']}", headers=city.auth("dispatcher")).json()
    assert parent["repeat_count"] == 1 and len(parent["reporters"]) == 2
    inc_id = parent["id"]
    for t in parent["tasks"]:
        _act(client, city, inc_id, "complete", headers=staff(t["department_id"]), result="已补装井盖")
    _act(client, city, inc_id, "verify", who="inspector", passed=True, note="已修复")
    with Session(city.engine) as s:
        notified = s.query(Reporter).filter(Reporter.incident_id == inc_id).all()
    assert len(notified) == 2 and all(r.notified_at and r.outcome for r in notified)


def test_different_text_nearby_is_only_suggested(client, city):
    b = _fresh_building(city)
    client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "井盖缺失", "category_code": "02001", "building_id": b.id})
    second = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "窨井有异味并且盖板有裂纹需要更换", "category_code": "02001", "building_id": b.id}).json()
    assert second["merged_into"] is None


def test_repeat_call_from_the_same_phone_is_counted(client, city):
    b = _fresh_building(city)
    body = {"caller_phone": "13911110007", "text": "我要反映工资被拖欠三个月了", "address": b.address}
    first = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"), json=body).json()
    again = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"),
                        json={**body, "text": "老板还是没发工资，上次已经打过电话"}).json()
    assert again["merged_into"] == first["incident"]["code"]


def test_extension_and_suspension_move_the_deadline(client, city, staff):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "人行道地砖翘起", "category_code": "02004", "building_id": b.id}).json()["incident"]
    dept = inc["main_department_id"]
    before = inc["deadline_at"]
    assert _act(client, city, inc["id"], "extension", headers=staff(dept), days=40, reason="x").status_code == 422
    r = _act(client, city, inc["id"], "extension", headers=staff(dept), days=2, reason="需采购材料")
    assert r.json()["extension_days"] == 2
    r = _act(client, city, inc["id"], "extension-decision", approve=True, note="同意")
    after = r.json()["deadline_at"]
    from datetime import datetime

    gained = deadlines.working_seconds_between(datetime.fromisoformat(before), datetime.fromisoformat(after))
    assert gained == 2 * deadlines.WORKDAY_SECONDS
    r = _act(client, city, inc["id"], "suspend", reason="等待产权单位确认")
    assert r.json()["suspended"] is True
    assert _act(client, city, inc["id"], "complete", headers=staff(dept), result="x").status_code == 409
    with Session(city.engine) as s:  # it was suspended for one working day
        s.execute(update(Incident).where(Incident.id == inc["id"]).values(
            suspended_at=utcnow() - timedelta(days=7)))
        s.commit()
    r = _act(client, city, inc["id"], "resume")
    resumed = datetime.fromisoformat(r.json()["deadline_at"])
    assert deadlines.working_seconds_between(datetime.fromisoformat(after), resumed) >= 4 * deadlines.WORKDAY_SECONDS


def test_overdue_incidents_raise_a_supervision_and_an_event(client, city):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "护栏被撞坏", "category_code": "02006", "building_id": b.id}).json()["incident"]
    with Session(city.engine) as s:
        s.execute(update(Incident).where(Incident.id == inc["id"]).values(
            deadline_at=utcnow() - timedelta(hours=1), warn_at=utcnow() - timedelta(hours=5)))
        s.commit()
    listed = client.get("/api/v1/ops/incidents", params={"status": "dispatched,handling"},
                        headers=city.auth("dispatcher")).json()["items"]
    assert listed[0]["light"] == "red"  # the queue puts overdue work first
    sub = client.app.state.bus.subscribe("citybase.ops.incident.supervised", durable=f"sup-{inc['id']}")
    r = client.post("/api/v1/ops/supervision/sweep", headers=city.auth("dispatcher")).json()
    assert inc["id"] in r["incident_ids"]
    again = client.post("/api/v1/ops/supervision/sweep", headers=city.auth("dispatcher")).json()
    assert inc["id"] not in again["incident_ids"]  # once
    events = [d.event for d in sub.fetch(batch=100, timeout=0.5)]
    assert any(e.data["incident_id"] == inc["id"] and e.data["department_id"] == inc["main_department_id"]
               for e in events)
    sups = client.get("/api/v1/ops/supervisions", headers=city.auth("dispatcher")).json()
    assert any(s["incident_id"] == inc["id"] for s in sups)


def test_every_step_is_published_with_the_callers_context(client, city):
    b = _fresh_building(city)
    sub = client.app.state.bus.subscribe("citybase.ops.incident.*", durable=f"steps-{uuid.uuid4().hex}")
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "公厕很脏", "category_code": "01007", "building_id": b.id}).json()["incident"]
    subjects = [d.event.subject for d in sub.fetch(batch=200, timeout=0.5) if d.event.data.get("incident_id") == inc["id"]]
    assert subjects == ["citybase.ops.incident.receive", "citybase.ops.incident.register",
                        "citybase.ops.incident.dispatch"]


def test_night_noise_goes_to_the_police_by_the_time_rule(city):
    from datetime import datetime

    from citybase.core.timeutil import SHANGHAI
    from citybase.ops.catalogue import service

    with Session(city.engine) as s:
        g = s.query(Area).filter(Area.level == "grid").first()
        c = s.get(Area, g.parent_id)
        night = datetime(2026, 11, 20, 23, 30, tzinfo=SHANGHAI)
        day = datetime(2026, 11, 20, 14, 0, tzinfo=SHANGHAI)
        kw = {"category_code": "07001", "grid_id": g.id, "community_id": c.id, "street_id": c.parent_id}
        police = s.query(Department).filter(Department.short_name == "公安分局").one().id
        assert service.route(session=s, at=night, **kw).main_department_id == police
        assert "hours 22–06" in service.route(session=s, at=night, **kw).why
        assert service.route(session=s, at=day, **kw).main_department_id == police  # district rule: 公安分局 too
        # 市容环境 in a street is the street office's, with the bureau assisting
        d = service.route(session=s, at=day, **{**kw, "category_code": "01001"})
        office = s.query(Department).filter(Department.area_id == c.parent_id).one()
        assert d.main_department_id == office.id and "街镇属地管理" in d.why


def test_changing_a_rule_never_rewrites_history(client, city):
    admin = city.auth("admin")
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "交通标志牌倒了", "category_code": "06002", "building_id": b.id}).json()["incident"]
    old_rule = inc["routing"]["rule_id"]
    depts = {d["short_name"]: d["code"] for d in client.get("/api/v1/departments", headers=admin).json()}
    r = client.post("/api/v1/ops/rules", headers=admin, json={
        "category_code": "06002", "main_department": depts["公安分局"], "assist_departments": [],
        "replaces_id": old_rule, "note": "交通标志改由交警负责"})
    assert r.status_code == 201 and r.json()["replaces_id"] == old_rule
    rules = {x["id"] for x in client.get("/api/v1/ops/rules", headers=admin).json()}
    assert old_rule not in rules and r.json()["id"] in rules
    kept = client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=admin).json()
    assert kept["routing"]["rule_id"] == old_rule and kept["main_department_id"] == inc["main_department_id"]
    b2 = _fresh_building(city)
    new = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "交通标志牌缺失", "category_code": "06002", "building_id": b2.id}).json()["incident"]
    assert new["routing"]["rule_id"] == r.json()["id"]
    bad = client.post("/api/v1/ops/rules", headers=admin, json={"category_code": "6", "main_department": "x"})
    assert bad.status_code == 422


def test_timeline_is_append_only(city, client):
    b = _fresh_building(city)
    client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "垃圾暴露", "category_code": "01001", "building_id": b.id})
    with pytest.raises(DBAPIError, match="append-only"):
        with city.engine.begin() as c:
            c.execute(text("UPDATE ops_timeline SET reason = 'x'"))


def test_inspector_report_with_photo(client, city):
    b = _fresh_building(city)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    r = client.post("/api/v1/ops/inspections", headers=city.auth("inspector"),
                    data={"lon": str(b.lon), "lat": str(b.lat), "category_code": "01005",
                          "description": "巡查发现墙面乱张贴小广告"},
                    files={"photo": ("p.png", png, "image/png")})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["channel"] == "inspector" and inc["media_url"].startswith("/api/v1/ops/media/")
    assert client.get(inc["media_url"], headers=city.auth("dispatcher")).content == png
    bad = client.post("/api/v1/ops/inspections", headers=city.auth("inspector"),
                      data={"lon": str(b.lon), "lat": str(b.lat), "category_code": "01005", "description": "x"},
                      files={"photo": ("p.txt", b"hello", "text/plain")})
    assert bad.status_code == 422 and "JPEG or PNG" in bad.json()["detail"]
    mine = client.get("/api/v1/ops/my-reports", headers=city.auth("inspector")).json()
    assert any(i["id"] == inc["id"] for i in mine)


@pytest.mark.parametrize("body, words", [
    ({"description": "x", "lon": 116.4, "lat": 39.9, "category_code": "02001"}, "outside every grid"),
    ({"description": "x", "category_code": "99001", "lon": 121.44, "lat": 31.17}, "unknown category"),
    ({"description": "x", "address": "火星路1号"}, "matches no building"),
    ({"description": "x"}, "no location"),
    ({"description": "", "lon": 121.44, "lat": 31.17}, "description"),
    ({"description": "x", "lon": 121.44, "lat": 31.17, "reporter_phone": "12345"}, "phone"),
])
def test_bad_intake_is_a_clear_error_and_stores_nothing(client, city, body, words):
    with Session(city.engine) as s:
        before = s.query(Incident).count()
    r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json=body)
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert words in json.dumps(r.json(), ensure_ascii=False)
    with Session(city.engine) as s:
        assert s.query(Incident).count() == before


def test_metrics_reflect_the_loop(client, city, staff):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "食品过期", "category_code": "09006", "building_id": b.id,
        "reporter_phone": "13911110008"}).json()["incident"]
    dept = inc["main_department_id"]
    _act(client, city, inc["id"], "first-contact", headers=staff(dept), note="已致电")
    _act(client, city, inc["id"], "complete", headers=staff(dept), result="已下架")
    _act(client, city, inc["id"], "verify", who="inspector", passed=True, note="已核实")
    _act(client, city, inc["id"], "rate", rating="基本满意")
    rows = client.get("/api/v1/ops/metrics", params={"by": "category"}, headers=city.auth("analyst")).json()
    row = next(r for r in rows if r["key"] == "09006")
    assert row["name"] == "食品安全投诉" and row["closed"] >= 1
    assert row["on_time_rate"] == 1.0 and row["satisfaction_rate"] == 1.0 and row["first_contact_rate"] == 1.0
    everything = client.get("/api/v1/ops/metrics", params={"by": "all"}, headers=city.auth("analyst")).json()[0]
    assert everything["reports"] >= everything["volume"] >= everything["closed"]
    assert 0 <= everything["repeat_rate"] <= 1 and everything["median_handling_hours"] is not None
    hs = client.get("/api/v1/ops/hotspots", headers=city.auth("analyst")).json()
    assert hs["grids"] and hs["grids"][0]["reports"] >= 1
    assert client.get("/api/v1/ops/metrics", params={"by": "planet"}, headers=city.auth("analyst")).status_code == 422


def test_admins_edit_the_category_tree(client, city):
    admin = city.auth("admin")
    cats = client.get("/api/v1/ops/categories").json()
    assert len(cats) >= 60 and {c["major_name"] for c in cats} >= {"市容环境", "设施管理", "街面秩序", "施工管理",
                                                                   "突发事件", "交通", "环保", "住房", "民生诉求"}
    assert {c["kind"] for c in cats} == {"component", "event"}
    r = client.put("/api/v1/ops/categories/09010", headers=admin, json={
        "name": "宠物扰民", "kind": "event", "urgent_hours": 4, "normal_days": 3, "low_days": 9,
        "needs_verification": False, "dup_radius_m": 50})
    assert r.status_code == 200 and r.json()["major_name"] == "民生诉求"
    r = client.put("/api/v1/ops/categories/09010", headers=admin, json={"normal_days": 2})
    assert r.json()["normal_days"] == 2 and r.json()["name"] == "宠物扰民"
    assert client.put("/api/v1/ops/categories/99001", headers=admin, json={}).status_code == 422
    assert client.put("/api/v1/ops/categories/09011", headers=admin, json={"name": "x"}).status_code == 422
    assert client.put("/api/v1/ops/categories/09010", headers=city.auth("dispatcher"), json={}).status_code == 403


def test_reading_reporter_contacts_is_audited(client, city):
    from citybase.security.models import AuditEntry

    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "公交站台玻璃碎了", "category_code": "02007", "building_id": b.id,
        "reporter_phone": "13911110009"}).json()["incident"]
    client.get(f"/api/v1/ops/incidents/{inc['id']}", headers=city.auth("dispatcher"))
    with Session(city.engine) as s:
        last = s.query(AuditEntry).order_by(AuditEntry.seq.desc()).first()
    assert last.action == "read.incident_reporter.unmasked" and last.subject_ids == str(inc["id"])
    assert last.actor.endswith(":dispatcher")


def test_emergencies_are_urgent_and_run_in_natural_hours(client, city):
    b = _fresh_building(city)
    inc = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": "路口燃气味很重，怀疑泄漏", "category_code": "05002", "building_id": b.id}).json()["incident"]
    assert inc["priority"] == "urgent"
    from datetime import datetime

    hours = (datetime.fromisoformat(inc["deadline_at"]) - datetime.fromisoformat(inc["registered_at"])).total_seconds() / 3600
    assert hours == pytest.approx(1.0, abs=0.01)  # 燃气泄漏: 1 natural hour, night or weekend alike


@pytest.fixture
def ops_env(monkeypatch):
    """Set CITYBASE_OPS_* variables for one test (the settings are read once per process, so the cache is reset)."""
    from citybase.ops.settings import ops_settings

    def setenv(name, value):
        monkeypatch.setenv(name, value)
        ops_settings.cache_clear()

    yield setenv
    monkeypatch.undo()
    ops_settings.cache_clear()


def test_the_city_sets_the_confidence_from_which_reports_dispatch_themselves(client, city, ops_env):
    def call(phone, text):
        r = client.post("/api/v1/ops/hotline", headers=city.auth("dispatcher"), json={
            "caller_phone": phone, "text": text, "address": _fresh_building(city).address})
        return r.json()["incident"]

    ops_env("CITYBASE_OPS_AUTO_DISPATCH_CONFIDENCE", "0")  # any suggestion is trusted
    trusted = call("13911110101", "小区门口的路灯坏了好几天")
    assert trusted["suggested_confidence"] is not None and trusted["status"] == "dispatched"
    ops_env("CITYBASE_OPS_AUTO_DISPATCH_CONFIDENCE", "1")  # none is (a different problem: no duplicate of the first)
    doubted = call("13911110102", "楼下的窨井盖不见了，晚上走路很危险")
    assert doubted["suggested_confidence"] < 1 and doubted["status"] == "received"
