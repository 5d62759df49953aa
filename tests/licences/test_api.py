"""The licences' API: the catalogue, lists by role (a citizen sees only their own), issue, verify, revoke,
the QR code, and the use log the holder sees."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.demo.accounts import DEMO_USERS
from citybase.licences.models import Licence, LicenceType
from citybase.licences.schemas import LicenceRead, LicenceTypeRead
from citybase.security.models import User
from tests.api_mixins import EVERY_CALLER, CreateTests, ListTests, PagedListTests, assert_problem

STAFF = ("admin", "clerk", "window_clerk", "data_officer")
ISSUERS = ("admin", "clerk", "data_officer")
READERS = ("citizen", *STAFF)


def citizen_person(city) -> int:
    with Session(city.engine) as s:
        return s.scalar(select(User.person_id).where(User.username == DEMO_USERS["citizen"][0]))


def someone_elses_licence(city) -> int:
    pid = citizen_person(city)
    with Session(city.engine) as s:
        return s.scalar(select(Licence.id).where(Licence.person_id.is_not(None), Licence.person_id != pid)
                        .order_by(Licence.id).limit(1))


def own_licence(city, type_key: str = "household_register") -> int:
    with Session(city.engine) as s:
        return s.scalar(select(Licence.id).join(LicenceType).where(Licence.person_id == citizen_person(city),
                                                                   LicenceType.key == type_key))


class TestLicenceTypes(ListTests):
    endpoint = "/api/v1/licences/types"
    schema = LicenceTypeRead
    roles = {"list": ("public",)}
    invalid_query = {"holder_kind": "robot"}


class TestLicences(PagedListTests, CreateTests):
    endpoint = "/api/v1/licences"
    schema = LicenceRead
    model = Licence
    lookup = "id"
    roles = {"list": READERS, "create": ISSUERS}
    invalid_data = {"person_id": 0}

    def create_data(self, client, city):
        return {"type_key": "retirement_certificate", "person_id": citizen_person(city),
                "fields": {"retired_on": "2026-06-30", "employer": "徐汇区某单位"}, "application_ref": "TEST"}


def test_a_citizen_lists_only_their_own_licences(client, city):
    pid = citizen_person(city)
    body = client.get("/api/v1/licences", params={"page_size": 500}, headers=city.auth("citizen")).json()
    assert body["total"] >= 2 and all(i["person_id"] == pid for i in body["items"])
    assert all(not i["masked"] for i in body["items"])  # their own, in full


@pytest.mark.parametrize("role", EVERY_CALLER)
def test_someone_elses_licence_is_open_to_staff_only(client, city, role):
    lic = someone_elses_licence(city)
    r = client.get(f"/api/v1/licences/{lic}", headers=city.auth(DEMO_USERS[role][0]) if role else {})
    if role in STAFF:
        assert r.status_code == 200 and r.json()["masked"] == (role != "data_officer")
    elif role == "citizen":
        assert_problem(r, 404)  # a citizen learns nothing of another's licences
    else:
        assert_problem(r, 403 if role else 401)


def test_staff_see_personal_fields_masked_and_the_data_officer_in_full_audited(client, city):
    lic = someone_elses_licence(city)
    masked = client.get(f"/api/v1/licences/{lic}", headers=city.auth("clerk")).json()
    full = client.get(f"/api/v1/licences/{lic}", headers=city.auth("dataofficer")).json()
    assert "*" in masked["holder_code"] and "*" not in full["holder_code"]
    from citybase.security.models import AuditEntry

    with Session(city.engine) as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert last.action == "read.licence.unmasked" and last.subject_ids == str(lic)


def test_a_token_verifies_online_until_it_is_revoked(client, city):
    made = client.post("/api/v1/licences", json=TestLicences().create_data(client, city), headers=city.auth("admin")).json()
    token = client.get(f"/api/v1/licences/{made['id']}/token", headers=city.auth("citizen")).json()
    assert token["link"].endswith("/licences/verify#" + token["token"])
    ok = client.post("/api/v1/licences/verify", json={"token": token["link"]}).json()
    assert ok["ok"] and ok["status"] == "valid" and ok["content"]["id"] == made["identifier"]
    r = client.post(f"/api/v1/licences/{made['id']}/revoke", json={"reason": "测试注销"}, headers=city.auth("admin"))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    after = client.post("/api/v1/licences/verify", json={"token": token["token"]}).json()
    assert after["signature"] == "valid" and after["status"] == "revoked" and not after["ok"]


def test_a_tampered_token_fails_verification(client, city):
    token = client.get(f"/api/v1/licences/{own_licence(city)}/token", headers=city.auth("citizen")).json()["token"]
    fmt, kid, payload, sig = token.split(".")
    bad = ".".join([fmt, kid, payload[:-3] + ("AAA" if payload[-3:] != "AAA" else "BBB"), sig])
    assert client.post("/api/v1/licences/verify", json={"token": bad}).json()["signature"] in ("bad_signature", "malformed")


def test_the_published_keys_verify_every_token(client, city):
    from citybase.licences import signing

    keys = {k["kid"]: signing.PublicKey.of_raw(signing.unb64url(k["x"])) for k in client.get("/api/v1/licences/keys").json()}
    token = client.get(f"/api/v1/licences/{own_licence(city)}/token", headers=city.auth("citizen")).json()["token"]
    assert signing.verify_token(token, keys).ok


def test_the_qr_code_is_an_svg_for_the_holder(client, city):
    r = client.get(f"/api/v1/licences/{own_licence(city)}/qr.svg", headers=city.auth("citizen"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml") and "<svg" in r.text


@pytest.mark.parametrize("role", EVERY_CALLER)
def test_the_token_of_someone_elses_licence_is_only_for_the_stewards(client, city, role):
    # the token holds every field in full: a clerk who sees them masked does not get it
    r = client.get(f"/api/v1/licences/{someone_elses_licence(city)}/token",
                   headers=city.auth(DEMO_USERS[role][0]) if role else {})
    if role == "data_officer":
        assert r.status_code == 200
    elif role == "citizen":
        assert_problem(r, 404)
    else:
        assert_problem(r, 403 if role else 401)


def test_a_clerks_use_is_in_the_holders_log(client, city):
    lic = own_licence(city)
    r = client.post(f"/api/v1/licences/{lic}/uses", headers=city.auth("clerk"),
                    json={"purpose": "开办企业：住所证明", "application_ref": "APP-42", "consent_ref": "C-42"})
    assert r.status_code == 201, r.text
    log = client.get("/api/v1/licences/uses", headers=city.auth("citizen")).json()
    assert log["items"][0]["id"] == r.json()["id"] and log["items"][0]["consent_ref"] == "C-42"
    one = client.get(f"/api/v1/licences/{lic}/uses", headers=city.auth("citizen")).json()
    assert r.json()["id"] in {u["id"] for u in one["items"]}
    assert_problem(client.post(f"/api/v1/licences/{lic}/uses", headers=city.auth("citizen"),
                               json={"purpose": "x"}), 403)


def test_a_lookup_by_identifier_checks_the_check_character(client, city):
    lic = client.get(f"/api/v1/licences/{own_licence(city)}", headers=city.auth("citizen")).json()
    ok = client.get("/api/v1/licences/lookup", params={"identifier": lic["identifier"]}, headers=city.auth("citizen"))
    assert ok.status_code == 200 and ok.json()["id"] == lic["id"]
    ident = lic["identifier"]
    wrong = ident[:-1] + ("0" if ident[-1] != "0" else "1")
    body = assert_problem(client.get("/api/v1/licences/lookup", params={"identifier": wrong},
                                     headers=city.auth("citizen")), 422)
    assert "check character" in body["detail"]


def test_staff_must_name_the_holder_of_a_use_log(client, city):
    assert_problem(client.get("/api/v1/licences/uses", headers=city.auth("clerk")), 422, naming=["holder"])


def test_a_firms_account_sees_its_entitys_licences(client, city):
    with Session(city.engine) as s:
        firm = s.scalars(select(User).where(User.username == "firm")).one()
        held = s.scalar(select(Licence.id).where(Licence.legal_entity_id == firm.legal_entity_id).limit(1))
    items = client.get("/api/v1/licences", params={"page_size": 500}, headers=city.auth("firm")).json()["items"]
    assert items and all(i["legal_entity_id"] == firm.legal_entity_id or i["person_id"] == firm.person_id for i in items)
    assert held is not None and held in {i["id"] for i in items}
