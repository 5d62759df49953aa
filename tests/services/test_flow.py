"""一网通办 end to end over the API, on both engines: a citizen applies for 新生儿出生一件事 with a prefilled
form and no material a licence or registry proves, three departments work in parallel (one asks for a
correction, the clock stops), the parts waiting for 户口 are released, the applicant rates it, a bad rating
opens a rectification, and the KPIs move; a firm does 开办企业 the same way; a window clerk files at the
counter; nobody sees another person's application."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from citybase.demo.documents import one_page_pdf
from citybase.kernel.models import OutboxEvent
from citybase.security.models import User

BASE = "/api/v1/services"
NEWBORN = {"child_name": "王小宝", "child_sex": "女", "child_birth_date": "2026-11-20",
           "birth_hospital": "复旦大学附属中山医院", "mother_name": "李梅", "father_name": "王强",
           "bank_account": "6222020200112233445"}


@pytest.fixture
def api(client, city, services_tokens):  # noqa: ANN001
    def call(method: str, path: str, user: str, **kw):  # noqa: ANN202
        headers = {**city.auth(user), **kw.pop("headers", {})}
        return client.request(method, path if path.startswith("/api/") else BASE + path, headers=headers, **kw)

    return call


def api_uses(api, code: str) -> list[dict]:  # noqa: ANN001
    r = api("GET", "/api/v1/licences/uses", "citizen", params={"page_size": 500})
    assert r.status_code == 200, r.text
    return [u for u in r.json()["items"] if u["application_ref"] == code]


NEWBORN_BROUGHT = ("applicant:住院分娩记录", "applicant:新生儿证件照", "licence:marriage_certificate")


def upload(api, app: dict, user: str, *keys: str) -> list[dict]:  # noqa: ANN001
    """Upload a one-page PDF for each material key, as ``user``."""
    out = []
    for key in keys:
        r = api("POST", f"/applications/{app['id']}/materials/{quote(key, safe='')}", user,
                files={"file": (key.split(":")[-1] + ".pdf", one_page_pdf(key), "application/pdf")})
        assert r.status_code in (200, 201), r.text
        out.append(r.json())
    return out


def _part(app: dict, item: str) -> dict:
    return next(p for p in app["parts"] if p["item_code"] == item)


def _step(api, app: dict, item: str, action: str, user: str, **body) -> dict:  # noqa: ANN001
    r = api("POST", f"/applications/{app['id']}/parts/{_part(app, item)['id']}/{action}", user, json=body or None)
    assert r.status_code == 200, r.text
    return r.json()


def _finish(api, app: dict, item: str, user: str, decision: str = "approve") -> dict:  # noqa: ANN001
    for action in ("accept", "review", decision, "complete"):
        app = _step(api, app, item, action, user, **({"reason": "不符合条件"} if decision == "refuse" and action == decision else {}))
    return app


def test_the_catalogue_and_bundles_are_public_and_paged(client, services_tokens):  # noqa: ANN001
    r = client.get(BASE + "/items", params={"page_size": 20})
    assert r.status_code == 200 and r.json()["total"] >= 80 and len(r.json()["items"]) == 20
    b = client.get(BASE + "/bundles/newborn").json()
    assert b["promised_days"] == 13 and b["critical_path"] == ["XH-WJW-001", "XH-GA-001", "XH-RS-001"]
    assert b["savings"]["fields"]["bundle"] < b["savings"]["fields"]["one_by_one"]
    assert {m["code"] for m in client.get(BASE + "/bundles").json()} >= {
        "newborn", "business-start", "retirement", "resale-home", "after-death", "restaurant"}
    assert client.get(BASE + "/bundles/nope").status_code == 404


def test_an_admin_edit_is_a_new_version_and_an_application_keeps_its_own(api, city):  # noqa: ANN001
    item = api("GET", "/items/XH-RS-007", "admin").json()
    draft = api("POST", "/applications", "citizen", json={"item": "XH-RS-007"}).json()
    spec = {k: item[k] for k in ("name", "kind", "legal_basis", "conditions", "applicant_kinds", "form", "materials",
                                 "fee", "statutory_days", "instant", "max_visits", "online_level", "steps")}
    dept = api("GET", "/items/XH-RS-001", "admin").json()["department_id"]
    with Session(city.engine) as s:
        code = s.scalar(text("SELECT code FROM departments WHERE id = :i"), {"i": dept})
    spec.update(code="XH-RS-007", department=code, committed_days=0, name=item["name"] + "（新版）")
    spec["form"] = {**spec["form"], "properties": {**spec["form"]["properties"],
                                                   "reason": {"type": "string", "title": "用途", "maxLength": 50}}}
    r = api("PUT", "/items/XH-RS-007", "admin", json=spec)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == item["current_version"] + 1
    assert api("PUT", "/items/XH-RS-007", "citizen", json=spec).status_code == 403
    versions = api("GET", "/items/XH-RS-007/versions", "admin").json()
    assert [v["version"] for v in versions][-2:] == [item["current_version"], item["current_version"] + 1]
    kept = api("GET", f"/applications/{draft['id']}", "citizen").json()
    assert "reason" not in kept["form_schema"]["properties"]  # the draft keeps the version it was started on
    fresh = api("POST", "/applications", "citizen", json={"item": "XH-RS-007"}).json()
    assert "reason" in fresh["form_schema"]["properties"]
    bad = {**spec, "committed_days": 99}
    r = api("PUT", "/items/XH-RS-007", "admin", json=bad)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


def test_newborn_one_application_three_departments_in_parallel_with_a_correction(api, city):  # noqa: ANN001
    app = api("POST", "/applications", "citizen", json={"bundle": "newborn"}).json()
    assert app["status"] == "draft" and app["channel"] == "online"
    assert {"applicant_name", "id_number", "household_no", "address"} <= set(app["prefilled"])
    assert app["form"]["id_number"] and app["form"]["applicant_name"]
    mats = {m["key"]: m for m in app["materials"]}
    assert mats["licence:id_card"]["status"] == "needs_consent" and mats["licence:id_card"]["proof"]
    assert mats["item:XH-WJW-001"]["status"] == "from_item"

    # bad input: every field named, in Chinese by default, and nothing stored
    r = api("PATCH", f"/applications/{app['id']}", "citizen",
            json={"form": {"child_sex": "未知", "child_birth_date": "2026-02-30"}}, headers={"Accept-Language": "zh"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"]: e["problem"] for e in r.json()["errors"]}
    assert set(fields) == {"child_sex", "child_birth_date"} and "新生儿性别" in fields["child_sex"]
    # who applies is what the registries say: the ID number cannot be typed over
    r = api("PATCH", f"/applications/{app['id']}", "citizen", json={"form": {"id_number": "11010519491231002X"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "id_number"
    # submitting too early lists what is missing, the draft stays
    r = api("POST", f"/applications/{app['id']}/submit", "citizen")
    assert r.status_code == 422
    wheres = {e["where"] for e in r.json()["errors"]}
    assert "form.child_name" in wheres and "materials.licence:id_card" in wheres
    assert api("GET", f"/applications/{app['id']}", "citizen").json()["status"] == "draft"

    r = api("PATCH", f"/applications/{app['id']}", "citizen", json={
        "form": NEWBORN, "consent": ["id_card", "household_register", "marriage_certificate"]})
    assert r.status_code == 200, r.text
    upload(api, app, "citizen", *NEWBORN_BROUGHT)
    r = api("POST", f"/applications/{app['id']}/submit", "citizen")
    assert r.status_code == 200, r.text
    app = r.json()
    assert app["status"] == "processing"
    ex = {e["key"]: e for e in app["exemptions"]}
    assert ex["licence:id_card"]["status"] == "from_licence" and ex["licence:id_card"]["proof"]["number"]
    assert ex["licence:id_card"]["proof"]["source"] == "licences"  # from the licence library, GB/T 36904 id
    # the holder sees every use: which department, for which application, with which consent
    uses = api_uses(api, app["code"])
    assert uses and all(u["consent_ref"] and u["department_name"] for u in uses)
    assert ex["item:XH-WJW-001"]["status"] == "from_item"
    status = {p["item_code"]: p["status"] for p in app["parts"]}
    assert status["XH-WJW-001"] == "pending" and status["XH-GA-001"] == "waiting"

    # another person does not see it; a clerk of an uninvolved department does not either
    assert api("GET", f"/applications/{app['id']}", "firm").status_code == 404
    assert api("GET", f"/applications/{app['id']}", "clerk").status_code == 404
    # a clerk may not work another department's part
    r = api("POST", f"/applications/{app['id']}/parts/{_part(app, 'XH-WJW-001')['id']}/accept", "clerk-ga")
    assert r.status_code in (403, 404)
    # an action not allowed from the state: 409
    r = api("POST", f"/applications/{app['id']}/parts/{_part(app, 'XH-WJW-001')['id']}/approve", "clerk-wjw")
    assert r.status_code == 409

    app = _step(api, app, "XH-WJW-001", "accept", "clerk-wjw")
    p = _part(app, "XH-WJW-001")
    assert p["deadline_at"] and p["light"] == "green"
    app = _finish(api, {**app}, "XH-WJW-001", "clerk-wjw") if False else app
    for action in ("review", "approve", "complete"):
        app = _step(api, app, "XH-WJW-001", action, "clerk-wjw")
    status = {p["item_code"]: p["status"] for p in app["parts"]}
    assert status["XH-GA-001"] == status["XH-WJW-002"] == status["XH-YB-002"] == "pending"  # released together
    # the approval issued the 出生医学证明 as a signed electronic licence, and it verifies offline
    from citybase.licences import service as licences

    mine = api("GET", "/api/v1/licences", "citizen", params={"page_size": 200}).json()["items"]
    birth = [x for x in mine if x["type_key"] == "birth_certificate" and x.get("application_ref") == app["code"]]
    assert len(birth) == 1 and birth[0]["identifier"]
    token = api("GET", f"/api/v1/licences/{birth[0]['id']}/token", "citizen").json()["token"]
    with Session(city.engine) as s:
        keys = licences.published_keys(session=s)
    checked = licences.verify_offline(token, keys)
    assert checked.ok and checked.content["f"]["mother_name"] == "李梅"
    assert "issue" in [e["action"] for e in api("GET", f"/applications/{app['id']}/timeline", "citizen").json()]
    assert status["XH-YB-001"] == status["XH-RS-001"] == "waiting"  # wait for 户口

    # three departments in parallel; 公安 asks for a correction (the clock stops)
    app = _step(api, app, "XH-GA-001", "accept", "clerk-ga")
    app = _step(api, app, "XH-WJW-002", "accept", "clerk-wjw")
    app = _step(api, app, "XH-YB-002", "accept", "clerk-yb")
    r = api("POST", f"/applications/{app['id']}/parts/{_part(app, 'XH-GA-001')['id']}/request-correction", "clerk-ga")
    assert r.status_code == 422  # a reason is needed
    app = _step(api, app, "XH-GA-001", "request-correction", "clerk-ga", reason="新生儿姓名与出生医学证明不一致")
    assert app["status"] == "correction" and _part(app, "XH-GA-001")["paused_at"]
    assert _part(app, "XH-GA-001")["reason"] == "新生儿姓名与出生医学证明不一致"
    r = api("POST", f"/applications/{app['id']}/parts/{_part(app, 'XH-GA-001')['id']}/correct", "citizen",
            json={"form": {"child_name": "王"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "child_name"
    app = _step(api, app, "XH-GA-001", "correct", "citizen", form={"child_name": "王小宝贝"})
    assert app["form"]["child_name"] == "王小宝贝" and _part(app, "XH-GA-001")["status"] == "accepted"
    assert _part(app, "XH-GA-001")["paused_at"] is None
    for item, user in (("XH-WJW-002", "clerk-wjw"), ("XH-YB-002", "clerk-yb"), ("XH-GA-001", "clerk-ga")):
        for action in ("review", "approve", "complete"):
            app = _step(api, app, item, action, user)
    status = {p["item_code"]: p["status"] for p in app["parts"]}
    assert status["XH-YB-001"] == status["XH-RS-001"] == "pending"
    app = _finish(api, app, "XH-YB-001", "clerk-yb")
    assert app["status"] == "processing"
    app = _finish(api, app, "XH-RS-001", "clerk-rs")
    assert app["status"] == "done" and app["outcome"] == "approved"

    actions = [e["action"] for e in api("GET", f"/applications/{app['id']}/timeline", "citizen").json()]
    assert actions[:2] == ["draft", "submit"] and actions[-1] == "done" and "request-correction" in actions
    with Session(city.engine) as s:
        subjects = [e.subject for e in s.scalars(select(OutboxEvent).where(
            OutboxEvent.subject.like("citybase.services.%")).order_by(OutboxEvent.seq))]
    assert "citybase.services.part.request-correction" in subjects and "citybase.services.application.done" in subjects

    before = api("GET", "/kpis", "analyst").json()["overall"]
    # 好差评: one rating; a bad one opens a rectification the applicant sees
    r = api("POST", f"/applications/{app['id']}/rating", "citizen", json={"grade": 2, "comment": "补正要求不清楚"})
    assert r.status_code == 201, r.text
    rect = r.json()["rectification"]
    assert rect and rect["status"] == "open" and rect["deadline_at"]
    assert api("POST", f"/applications/{app['id']}/rating", "citizen", json={"grade": 5}).status_code == 409
    mine = api("GET", f"/applications/{app['id']}", "citizen").json()
    assert mine["rating"]["rectification"]["id"] == rect["id"]
    dept_clerk = {"XH-RS-001": "clerk-rs"}["XH-RS-001"]  # the last department to finish
    r = api("POST", f"/rectifications/{rect['id']}/done", "clerk-ga",
            json={"action_taken": "x", "callback_note": "y"})
    assert r.status_code == 403
    r = api("POST", f"/rectifications/{rect['id']}/done", dept_clerk,
            json={"action_taken": "补正告知书改为逐项列明", "callback_note": "申请人表示满意"})
    assert r.status_code == 200 and r.json()["status"] == "done" and r.json()["callback_at"]
    after = api("GET", "/kpis", "analyst").json()["overall"]
    assert after["ratings"] == before["ratings"] + 1
    assert after["bad_ratings"] == before["bad_ratings"] + 1
    assert after["rectification_rate"] is not None and after["material_exemption_rate"] > 0


def test_a_firm_starts_a_business_fanning_out_to_five_departments(api, city):  # noqa: ANN001
    app = api("POST", "/applications", "firm", json={"bundle": "business-start"}).json()
    assert app["applicant_kind"] == "entity" and app["form"]["entity_name"] and app["form"]["entity_address"]
    rep = {"applicant_name": "张三", "id_number": "11010519491231002X"}  # when the registry has no such person
    r = api("PATCH", f"/applications/{app['id']}", "firm", json={
        "form": {**{k: v for k, v in rep.items() if k not in app["form"]}, "registered_capital": 100,
                 "business_scope": "软件开发；信息技术咨询服务", "employees": 5, "bank_account": "6222020200112233445"},
        "consent": ["id_card", "business_licence"]})
    assert r.status_code == 200, r.text
    upload(api, app, "firm", "applicant:公司章程", "applicant:住所使用证明", "licence:id_card")
    app = api("POST", f"/applications/{app['id']}/submit", "firm").json()
    assert app["status"] == "processing", app
    assert len({p["department_id"] for p in app["parts"]}) == 5
    app = _finish(api, app, "XH-SCJG-001", "clerk")
    pending = [p["item_code"] for p in app["parts"] if p["status"] == "pending"]
    assert set(pending) == {"XH-GA-010", "XH-SW-001", "XH-RS-010", "XH-YB-010"}
    assert api("GET", f"/applications/{app['id']}", "citizen").status_code == 404
    with Session(city.engine) as s:
        done = [e for e in s.scalars(select(OutboxEvent).where(OutboxEvent.subject == "citybase.services.part.complete"))
                if "\"business_licence\"" in e.data]
    assert done  # which licence the approval issued, and its identifier (GB/T 36904)
    import json

    issued = [json.loads(e.data)["licence_identifier"] for e in done]
    assert any(i and i.startswith("1.2.156.") for i in issued)


def test_a_refused_item_voids_what_waits_for_it(api):  # noqa: ANN001
    app = api("POST", "/applications", "citizen", json={"bundle": "newborn"}).json()
    api("PATCH", f"/applications/{app['id']}", "citizen", json={
        "form": NEWBORN, "consent": ["id_card", "household_register"]})
    upload(api, app, "citizen", *NEWBORN_BROUGHT)
    app = api("POST", f"/applications/{app['id']}/submit", "citizen").json()
    app = _step(api, app, "XH-WJW-001", "not-accept", "clerk-wjw", reason="非本区出生")
    assert app["status"] == "done" and app["outcome"] == "refused"
    assert {p["status"] for p in app["parts"] if p["item_code"] != "XH-WJW-001"} == {"void"}


def test_a_window_clerk_files_for_a_person_at_the_counter(api, city):  # noqa: ANN001
    with Session(city.engine) as s:
        pid = s.scalar(text("SELECT id FROM persons WHERE birth_date < '1990-01-01' ORDER BY id DESC LIMIT 1"))
        citizen_pid = s.scalar(select(User.person_id).where(User.username == "citizen"))
    assert pid != citizen_pid
    r = api("POST", "/applications", "window", json={"item": "XH-GA-007", "person_id": pid})
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["channel"] == "window" and app["person_id"] == pid and app["form"]["household_no"]
    r = api("POST", f"/applications/{app['id']}/submit", "window")
    assert r.status_code == 422 and r.json()["errors"][0]["where"] == "materials.licence:id_card"  # no consent yet
    api("PATCH", f"/applications/{app['id']}", "window", json={"consent": ["id_card"]})  # given at the counter
    app = api("POST", f"/applications/{app['id']}/submit", "window").json()
    assert app["status"] == "processing", app
    assert {e["status"] for e in app["exemptions"]} == {"from_licence", "from_registry"}
    assert api("GET", f"/applications/{app['id']}", "citizen").status_code == 404
    # a citizen cannot file for someone else
    r = api("POST", "/applications", "citizen", json={"item": "XH-GA-007", "person_id": pid})
    assert r.json()["person_id"] == citizen_pid


def test_a_clerk_sees_their_departments_queue_and_kpis_filter_by_department(api):  # noqa: ANN001
    app = api("POST", "/applications", "citizen", json={"bundle": "newborn"}).json()
    api("PATCH", f"/applications/{app['id']}", "citizen", json={
        "form": NEWBORN, "consent": ["id_card", "household_register"]})
    upload(api, app, "citizen", *NEWBORN_BROUGHT)
    app = api("POST", f"/applications/{app['id']}/submit", "citizen").json()
    wjw = _part(app, "XH-WJW-001")
    q = api("GET", "/parts", "clerk-wjw").json()
    assert wjw["id"] in {p["id"] for p in q["items"]}
    assert {p["department_id"] for p in q["items"]} == {wjw["department_id"]}
    assert wjw["id"] not in {p["id"] for p in api("GET", "/parts", "clerk-ga").json()["items"]}
    # the clerk sees this application in their list, another department's clerk does not
    assert app["id"] in {a["id"] for a in api("GET", "/applications", "clerk-wjw").json()["items"]}
    assert app["id"] in {a["id"] for a in api("GET", "/applications", "clerk-ga").json()["items"]}  # a part waits there
    assert app["id"] not in {a["id"] for a in api("GET", "/applications", "clerk").json()["items"]}  # 市场监管: none
    assert app["id"] not in {a["id"] for a in api("GET", "/applications", "firm").json()["items"]}
    assert app["id"] in {a["id"] for a in api("GET", "/applications", "citizen").json()["items"]}
    assert api("GET", "/parts", "citizen").status_code == 403
    k = api("GET", "/kpis", "analyst").json()
    assert k["overall"]["items"] >= 80 and 0 < k["overall"]["time_cut_rate"] < 1
    assert k["by_department"]
    assert api("GET", "/kpis", "citizen").status_code == 403
    assert api("GET", f"/applications/{app['id']}", "analyst").status_code == 403  # KPIs, not personal data
    later = api("GET", "/kpis", "analyst", params={"since": "2099-01-01"}).json()["overall"]
    assert later["applications"] == 0 and later["items"] == k["overall"]["items"]
    one = api("GET", "/kpis", "analyst", params={"item": "XH-WJW-001"}).json()
    assert one["overall"]["items"] == 1 and len(one["by_department"]) == 1


def test_an_overdue_part_raises_supervision_once(api, city):  # noqa: ANN001
    from datetime import timedelta

    from citybase.core.timeutil import utcnow
    from citybase.services import service
    from citybase.services.service import Actor

    app = api("POST", "/applications", "citizen", json={"item": "XH-GA-006"}).json()
    api("PATCH", f"/applications/{app['id']}", "citizen", json={"form": {"reason": "出国留学"}, "consent": ["id_card"]})
    app = api("POST", f"/applications/{app['id']}/submit", "citizen").json()
    part = app["parts"][0]
    admin = Actor("user:admin", roles=frozenset({"admin"}))
    with Session(city.engine) as s:
        service.act(session=s, actor=admin, application_id=app["id"], part_id=part["id"], action="accept",
                    now=utcnow() - timedelta(days=30))
        s.commit()
    seen = api("GET", f"/applications/{app['id']}", "citizen").json()
    assert seen["parts"][0]["light"] == "red"
    r = api("POST", "/supervision/sweep", "admin")
    assert r.status_code == 200 and part["id"] in r.json()["part_ids"]
    assert part["id"] not in api("POST", "/supervision/sweep", "admin").json()["part_ids"]
    timeline = api("GET", f"/applications/{app['id']}/timeline", "citizen").json()
    assert [e["action"] for e in timeline].count("supervise") == 1
    assert api("GET", f"/applications/{app['id']}", "citizen").json()["parts"][0]["supervised_at"]


def test_two_clerks_taking_the_same_step_at_once_store_it_once(api, city):  # noqa: ANN001
    import threading

    from sqlalchemy.orm.exc import StaleDataError

    from citybase.core.errors import Conflict
    from citybase.services import service
    from citybase.services.service import Actor
    from citybase.storage.db import make_sessionmaker

    sessions = make_sessionmaker(city.engine)  # as the app makes them (SQLite: one writer at a time)
    app = api("POST", "/applications", "citizen", json={"item": "XH-GA-006"}).json()
    api("PATCH", f"/applications/{app['id']}", "citizen", json={"form": {"reason": "签证"}, "consent": ["id_card"]})
    app = api("POST", f"/applications/{app['id']}/submit", "citizen").json()
    part = app["parts"][0]["id"]
    clerk = Actor("user:a", roles=frozenset({"admin"}))
    outcome: list[BaseException | None] = []

    def second() -> None:
        with sessions() as s:
            try:
                service.act(session=s, actor=clerk, application_id=app["id"], part_id=part, action="accept")
                s.commit()
                outcome.append(None)
            except (StaleDataError, Conflict) as exc:
                outcome.append(exc)

    with sessions() as first:
        service.act(session=first, actor=clerk, application_id=app["id"], part_id=part, action="accept")
        t = threading.Thread(target=second)
        t.start()
        first.commit()
    t.join()
    assert outcome and outcome[0] is not None  # the later one stored nothing
    actions = [e["action"] for e in api("GET", f"/applications/{app['id']}/timeline", "citizen").json()]
    assert actions.count("accept") == 1


def test_staff_reads_of_an_applicants_form_are_audited_and_the_applicants_own_are_not(api, city):  # noqa: ANN001
    from citybase.security.models import AuditEntry

    app = api("POST", "/applications", "citizen", json={"item": "XH-GA-007"}).json()

    def reads() -> int:
        with Session(city.engine) as s:
            return len([e for e in s.scalars(select(AuditEntry).where(
                AuditEntry.action == "read.services_application.form")) if str(app["id"]) in e.subject_ids.split(",")])

    before = reads()
    assert api("GET", f"/applications/{app['id']}", "citizen").status_code == 200
    assert reads() == before
    assert api("GET", f"/applications/{app['id']}", "window").status_code == 200
    assert reads() == before + 1


def test_the_result_of_an_item_done_earlier_is_not_asked_for_again(api, city):  # noqa: ANN001
    # 设立登记's result (the business licence) is what 公章刻制备案 needs, applied for on its own afterwards;
    # filed at the window for a firm with no history on the platform
    with Session(city.engine) as s:
        # a firm of the demo city (with its registered address: other tests add entities without one) that
        # has no application yet
        eid = s.scalar(text("SELECT max(id) FROM legal_entities WHERE address <> '' AND id NOT IN "
                            "(SELECT legal_entity_id FROM services_applications WHERE legal_entity_id IS NOT NULL)"))
    who = {"applicant_kind": "entity", "legal_entity_id": eid}
    app = api("POST", "/applications", "window", json={"item": "XH-SCJG-001", **who}).json()
    rep = {"applicant_name": "张三", "id_number": "11010519491231002X"}
    api("PATCH", f"/applications/{app['id']}", "window", json={
        "form": {**{k: v for k, v in rep.items() if k not in app["form"]}, "registered_capital": 10,
                 "business_scope": "软件开发"},
        "provided": ["applicant:公司章程", "applicant:住所使用证明", "licence:id_card"]})
    app = api("POST", f"/applications/{app['id']}/submit", "window").json()
    assert app["status"] == "processing", app
    seal = api("POST", "/applications", "window", json={"item": "XH-GA-010", **who}).json()
    assert {m["key"]: m["status"] for m in seal["materials"]}["item:XH-SCJG-001"] == "to_bring"  # not yet done
    app = _finish(api, app, "XH-SCJG-001", "clerk")
    seal = api("GET", f"/applications/{seal['id']}", "window").json()
    done = {m["key"]: m for m in seal["materials"]}["item:XH-SCJG-001"]
    assert done["status"] == "from_item" and done["proof"]["number"] == app["code"]
