"""统一身份认证: an account linked to its registry person (a citizen) or to the legal entity it acts for (a firm),
and the link carried by every request's principal. Both engines."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.registry.models import LegalEntity, Person
from citybase.security.models import User
from tests.api_mixins import serial


def test_the_demo_citizen_and_firm_sign_in_as_their_person_and_entity(client, city):
    me = client.get("/api/v1/me", headers=city.auth("citizen")).json()
    firm = client.get("/api/v1/me", headers=city.auth("firm")).json()
    with Session(city.engine) as s:
        person = s.get(Person, me["person_id"])
        entity = s.get(LegalEntity, firm["legal_entity_id"])
        assert person is not None and entity is not None
        assert me["legal_entity_id"] is None and firm["roles"] == ["citizen"]
        rep = s.scalar(select(Person.id).where(Person.id_number == entity.legal_rep_id_number))
        assert firm["person_id"] == (rep if rep != me["person_id"] else None)
    staff = client.get("/api/v1/me", headers=city.auth("clerk")).json()
    assert staff["person_id"] is None and staff["department_id"] is not None and staff["roles"] == ["clerk"]


def test_an_admin_links_a_new_account_to_a_person_once(client, city):
    with Session(city.engine) as s:
        taken = set(s.scalars(select(User.person_id).where(User.person_id.is_not(None))))
        pid = s.scalar(select(Person.id).where(Person.id.not_in(taken)).order_by(Person.id.desc()).limit(1))
        eid = s.scalar(select(LegalEntity.id).order_by(LegalEntity.id.desc()).limit(1))
    body = {"username": f"resident-{serial()}", "display_name": "居民", "roles": ["citizen"],
            "person_id": pid, "legal_entity_id": eid}
    r = client.post("/api/v1/users", json=body, headers=city.auth("admin"))
    assert r.status_code == 201, r.text
    assert (r.json()["person_id"], r.json()["legal_entity_id"]) == (pid, eid)
    again = client.post("/api/v1/users", json={**body, "username": f"resident-{serial()}"},
                        headers=city.auth("admin"))
    assert again.status_code == 409 and "already has an account" in again.json()["detail"]


def test_a_link_to_a_row_that_does_not_exist_is_refused_not_a_500(client, city):
    for field in ("person_id", "legal_entity_id", "department_id"):
        r = client.post("/api/v1/users", json={"username": f"ghost-{serial()}", "display_name": "无",
                                               "roles": ["citizen"], field: 99999999}, headers=city.auth("admin"))
        assert r.status_code == 422, r.text
        assert field in r.json()["detail"] and r.json()["fix"]
