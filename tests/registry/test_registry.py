"""Registries through the API: validation, masking by role, audited unmasked reads, filters."""

import json

from sqlalchemy.orm import Session

from citybase.core.ids import id_check_char
from citybase.geo.models import Area, Building
from citybase.registry.models import LegalEntity, Person
from citybase.security.models import AuditEntry


def _audit_count(city, action):
    with Session(city.engine) as s:
        return s.query(AuditEntry).filter(AuditEntry.action == action).count()


def _fresh_id(prefix="31010420000229"):
    # 29 Feb 2000 — a date the generator never fills to the 500th sequence code.
    for seq in range(980, 999):
        first17 = f"{prefix}{seq:03d}"
        yield first17 + id_check_char(first17)


def test_dispatcher_sees_persons_masked_and_nothing_is_audited(client, city):
    before = _audit_count(city, "read.person.unmasked")
    r = client.get("/api/v1/persons", params={"page_size": 5}, headers=city.auth("dispatcher"))
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 5 and r.json()["total"] >= 5
    for p in items:
        assert p["masked"] is True
        assert p["id_number"][6:14] == "********" and len(p["id_number"]) == 18
        assert p["phone"] is None or p["phone"][3:7] == "****"
        assert "*" in p["name"] and p["birth_date"].endswith("-**-**")
    assert _audit_count(city, "read.person.unmasked") == before


def test_data_officer_sees_persons_in_full_and_each_read_is_audited(client, city):
    before = _audit_count(city, "read.person.unmasked")
    r = client.get("/api/v1/persons", params={"page_size": 3}, headers=city.auth("dataofficer"))
    items = r.json()["items"]
    assert all(p["masked"] is False and "*" not in p["id_number"] for p in items)
    with Session(city.engine) as s:
        last = s.query(AuditEntry).order_by(AuditEntry.seq.desc()).first()
    assert _audit_count(city, "read.person.unmasked") == before + 1
    assert last.subject_ids == ",".join(str(p["id"]) for p in items)
    assert last.actor.endswith(":dataofficer") and "id_number" in last.fields


def test_filter_persons_by_grid(client, city):
    with Session(city.engine) as s:
        p = s.query(Person).first()
        grid = s.get(Area, s.get(Building, p.building_id).grid_id)
        expected = s.query(Person).join(Building, Building.id == Person.building_id).filter(
            Building.grid_id == grid.id).count()
    r = client.get("/api/v1/persons", params={"area": grid.code, "page_size": 1}, headers=city.auth("handler"))
    assert r.json()["total"] == expected


def test_register_a_person_from_an_address_in_words(client, city):
    with Session(city.engine) as s:
        b = s.query(Building).filter(Building.use == "residential").first()
    idn = next(_fresh_id())
    body = {"id_number": idn, "name": "测试人", "phone": "13912345678", "household_no": "H999999999",
            "address": b.address.replace("上海市", "")}
    r = client.post("/api/v1/persons", json=body, headers=city.auth("dataofficer"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["building_id"] == b.id and got["sex"] == ("M" if int(idn[16]) % 2 else "F")
    assert got["birth_date"] == "2000-02-29"
    again = client.post("/api/v1/persons", json=body, headers=city.auth("dataofficer"))
    assert again.status_code == 409
    # The rest of the city hears of it, with who caused it and no personal fields.
    sub = client.app.state.bus.subscribe("citybase.registry.>", durable=f"t-{got['id']}")
    events = [d.event for d in sub.fetch(batch=100, timeout=0.2)]
    mine = [e for e in events if e.data.get("person_id") == got["id"]]
    assert len(mine) == 1 and mine[0].subject == "citybase.registry.person_registered"
    assert mine[0].context.user_id is not None and idn not in json.dumps(mine[0].data)


def test_bad_id_number_is_rejected_naming_the_wrong_character(client, city):
    idn = next(_fresh_id("31010419991231"))
    wrong = idn[:17] + ("0" if idn[17] != "0" else "1")
    r = client.post("/api/v1/persons", json={"id_number": wrong, "name": "甲", "household_no": "H1"},
                    headers=city.auth("dataofficer"))
    assert r.status_code == 422
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["position"] == 18 and f"should be '{idn[17]}'" in problem["detail"]
    assert problem["fix"]


def test_sex_contradicting_the_id_number_is_rejected(client, city):
    idn = next(_fresh_id("31010419881231"))
    wrong_sex = "F" if int(idn[16]) % 2 else "M"
    r = client.post("/api/v1/persons", json={"id_number": idn, "name": "乙", "household_no": "H1", "sex": wrong_sex},
                    headers=city.auth("dataofficer"))
    assert r.status_code == 422 and "character 17" in r.json()["detail"]


def test_legal_entities_mask_the_representative_for_staff(client, city):
    r = client.get("/api/v1/legal-entities", params={"page_size": 3, "entity_type": "enterprise"},
                   headers=city.auth("analyst"))
    assert r.status_code == 200
    for e in r.json()["items"]:
        assert e["entity_type"] == "enterprise" and e["uscc"].startswith("91")
        assert e["legal_rep_id_number"][6:14] == "********"


def test_bad_uscc_is_rejected_with_position(client, city):
    body = {"uscc": "91310104MA1FL1234Z", "name": "某公司", "entity_type": "enterprise", "industry_code": "I",
            "industry": "信息传输、软件和信息技术服务业", "legal_rep_name": "丙",
            "legal_rep_id_number": "11010519491231002X", "registered_capital": 100, "established_on": "2020-01-01"}
    r = client.post("/api/v1/legal-entities", json=body, headers=city.auth("dataofficer"))
    assert r.status_code == 422 and r.json()["position"] == 18


def test_departments_list_duties_and_street_offices(client, city):
    depts = client.get("/api/v1/departments", headers=city.auth("dispatcher")).json()
    assert len(depts) >= 30
    names = {d["name"] for d in depts}
    assert "徐汇区城市管理行政执法局" in names
    offices = [d for d in depts if d["kind"] == "street_office"]
    assert offices and all(d["area_code"] and len(d["area_code"]) == 9 for d in offices)
    assert all(d["duties"] for d in depts)


def test_identifier_check_endpoint_is_public(client):
    r = client.get("/api/v1/identifiers/check", params={"kind": "id_number", "value": "110105194912310021"})
    assert r.status_code == 200
    assert r.json()["valid"] is False and r.json()["position"] == 18


def test_stats_count_the_registries(client, city):
    s = client.get("/api/v1/stats").json()
    with Session(city.engine) as db:  # other tests of the session register persons and entities too
        persons, entities = db.query(Person).count(), db.query(LegalEntity).count()
    assert s["district"]["code"] == "310104" and s["areas"]["grid"] == 40
    assert (s["persons"], s["legal_entities"]) == (persons, entities) and persons >= 6000 and entities >= 600
