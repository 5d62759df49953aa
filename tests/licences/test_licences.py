"""The licences' service on both engines: the demo's licences, issuing, finding a holder's valid ones,
use, revocation and expiry as the online check sees them."""

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, InvalidInput
from citybase.licences import service
from citybase.licences.identifiers import parse_identifier
from citybase.licences.models import Licence, LicenceType


@pytest.fixture
def session(city):
    with Session(city.engine) as s:
        yield s
        s.rollback()


def a_person_id(session, min_age: int = 30) -> int:
    from citybase.registry.models import Person

    born = date(date.today().year - min_age, 1, 1)
    # a person of the demo city, holding licences (other tests register persons who hold none)
    return session.scalar(select(Person.id).where(Person.birth_date < born, Person.id.in_(
        select(Licence.person_id).where(Licence.person_id.is_not(None)))).order_by(Person.id.desc()).limit(1))


def test_the_demo_issues_every_kind_the_issue_names(session):
    counts = dict(session.execute(select(LicenceType.key, func.count(Licence.id)).join(Licence).group_by(LicenceType.key)).all())
    for key in ("id_card", "household_register", "marriage_certificate", "business_licence",
                "food_business_licence", "birth_certificate"):
        assert counts.get(key, 0) > 0, key


def test_every_demo_licence_has_a_valid_identifier_and_signature(session):
    keys = service.published_keys(session=session)
    rows = session.scalars(select(Licence).order_by(Licence.id).limit(300)).all()
    for lic in rows:
        parse_identifier(lic.identifier)
        checked = service.verify_offline(lic.token, keys)
        assert checked.ok and checked.content["id"] == lic.identifier and checked.content["hc"] == lic.holder_code


def test_an_issued_licence_is_found_valid_for_its_holder_and_verifies_online(session):
    pid = a_person_id(session)
    before = {lic.id for lic in service.find_valid(session=session, type_key="retirement_certificate", person_id=pid)}
    lic = service.issue(session=session, type_key="retirement_certificate", person_id=pid,
                        fields={"retired_on": "2026-01-01", "employer": "徐汇区某单位"}, application_ref="APP-1")
    found = service.find_valid(session=session, type_key="retirement_certificate", person_id=pid)
    assert {x.id for x in found} == before | {lic.id}
    v = service.verify(session=session, token=lic.token)
    assert v.ok and v.registered and v.status == "valid" and v.content["f"]["employer"] == "徐汇区某单位"


def test_a_revoked_licence_still_has_a_good_signature_but_fails_online_and_cannot_be_used(session):
    pid = a_person_id(session)
    lic = service.issue(session=session, type_key="retirement_certificate", person_id=pid,
                        fields={"retired_on": "2026-01-01", "employer": "某单位"})
    service.revoke(session=session, licence_id=lic.id, reason="错误发证")
    v = service.verify(session=session, token=lic.token)
    assert v.signature == "valid" and v.status == "revoked" and not v.ok
    assert lic.id not in {x.id for x in service.find_valid(session=session, person_id=pid)}
    with pytest.raises(Conflict):
        service.use(session=session, licence_id=lic.id, by_department_id=None, purpose="办理退休", actor="test")


def test_a_licence_past_its_validity_is_expired(session):
    pid = a_person_id(session)
    lic = service.issue(session=session, type_key="social_security_card", person_id=pid,
                        fields={"card_no": "M00000001", "issued_by": "上海市"}, issued_on=date(2010, 3, 1))
    assert lic.expires_on == date(2020, 3, 1)
    assert service.status_of(lic) == "expired" and service.verify(session=session, token=lic.token).status == "expired"
    rows, _ = service.list_licences(session=session, person_id=pid, status="expired")
    assert lic.id in {r.id for r in rows}


def test_a_use_is_logged_for_the_holder(session):
    pid = a_person_id(session)
    lic = service.find_valid(session=session, type_key="household_register", person_id=pid)[0]
    u = service.use(session=session, licence_id=lic.id, by_department_id=lic.issuer_department_id,
                    purpose="新生儿出生一件事：户口登记", application_ref="APP-7", consent_ref="CONSENT-7", actor="test")
    ids = service.holder_licence_ids(session=session, person_id=pid, legal_entity_id=None)
    rows, total = service.list_uses(session=session, licence_ids=ids)
    assert rows[0].id == u.id and rows[0].consent_ref == "CONSENT-7" and total >= 1


def test_wrong_holders_and_fields_are_refused_by_name(session):
    pid = a_person_id(session)
    with pytest.raises(InvalidInput) as exc:
        service.issue(session=session, type_key="business_licence", person_id=pid, fields={})
    assert exc.value.extra["field"] == "legal_entity_id"
    with pytest.raises(InvalidInput) as exc:
        service.issue(session=session, type_key="retirement_certificate", person_id=pid,
                      fields={"retired_on": "2026-01-01", "employer": "x", "salary": "1"})
    assert "salary" in str(exc.value.detail)
    with pytest.raises(InvalidInput) as exc:
        service.issue(session=session, type_key="retirement_certificate", person_id=pid, fields={"retired_on": "2026-01-01"})
    assert "employer" in str(exc.value.detail)
