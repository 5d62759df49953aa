"""The registries' promises: validated persons and legal entities, departments and their duties.

Functions take ``session`` keyword-only and never commit."""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, InvalidInput, NotFound
from citybase.core.i18n import Msg
from citybase.core.ids import id_number_birth_sex, validate_id_number, validate_uscc
from citybase.core.phones import check_phone
from citybase.core.timeutil import utcnow
from citybase.geo import service as geo
from citybase.registry import repository as repo
from citybase.registry.models import ENTITY_TYPES, Department, LegalEntity, Person


def get_person(*, session: Session, person_id: int) -> Person:
    p = session.get(Person, person_id)
    if p is None:
        raise NotFound(Msg('no person with id {person_id}', person_id=person_id), fix=Msg('Search with GET /api/v1/persons.'))
    return p


def create_person(*, session: Session, id_number: str, name: str, phone: str | None, household_no: str,
                  building_id: int | None = None, address: str | None = None,
                  sex: str | None = None, birth_date: date | None = None) -> Person:
    """Register a person. The ID number is validated and must agree with sex and birth date when given;
    an address in words is matched to a building when no building id is given."""
    idn = validate_id_number(id_number)
    born, s = id_number_birth_sex(idn)
    if birth_date and birth_date != born:
        raise InvalidInput(Msg('birth date {birth_date} disagrees with the ID number ({born})', birth_date=birth_date, born=born),
                           fix=Msg('Omit birth_date (it is read from the ID number) or correct it.'))
    if sex and sex != s:
        raise InvalidInput(Msg('sex {sex!r} disagrees with the ID number (character 17 says {s!r})', sex=sex, s=s),
                           fix=Msg('Omit sex (it is read from the ID number) or correct it.'))
    if not name.strip():
        raise InvalidInput(Msg('name is empty'), fix=Msg('Give the name as on the ID card.'))
    if repo.person_by_id_number(session, idn):
        raise Conflict(Msg('a person with ID number {idn}…{idn2} is already registered', idn=idn[:6], idn2=idn[-4:]),
                       fix=Msg('Update the existing record instead of creating a new one.'))
    building = _resolve_building(session, building_id, address)
    person = Person(id_number=idn, name=name.strip(), sex=s, birth_date=born, phone=check_phone(phone),
                    household_no=household_no, building_id=building.id if building else None,
                    registered_address=building.address if building else (address or ""), created_at=utcnow())
    session.add(person)
    session.flush()
    return person


def _resolve_building(session: Session, building_id: int | None, address: str | None):
    if building_id is not None:
        return geo.get_building(session=session, building_id=building_id)
    if address:  # a registered address must match closely: no guessing a person's home
        return geo.building_at_address(session=session, text=address, min_score=90)
    return None


def get_entity(*, session: Session, entity_id: int) -> LegalEntity:
    e = session.get(LegalEntity, entity_id)
    if e is None:
        raise NotFound(Msg('no legal entity with id {entity_id}', entity_id=entity_id), fix=Msg('Search with GET /api/v1/legal-entities.'))
    return e


def create_entity(*, session: Session, uscc: str, name: str, entity_type: str, industry_code: str, industry: str,
                  legal_rep_name: str, legal_rep_id_number: str, registered_capital: float,
                  established_on: date, building_id: int | None = None, address: str | None = None) -> LegalEntity:
    """Register a legal entity with a validated GB 32100 code and a validated representative's ID number."""
    code = validate_uscc(uscc)
    rep = validate_id_number(legal_rep_id_number)
    if entity_type not in ENTITY_TYPES:
        raise InvalidInput(Msg('unknown entity_type {entity_type!r}', entity_type=entity_type), fix=Msg('Use one of: {items}.', items=', '.join(ENTITY_TYPES)))
    if repo.entity_by_uscc(session, code):
        raise Conflict(Msg('legal entity {code} is already registered', code=code), fix=Msg('Update the existing record.'))
    building = _resolve_building(session, building_id, address)
    e = LegalEntity(uscc=code, name=name, entity_type=entity_type, industry_code=industry_code, industry=industry,
                    building_id=building.id if building else None,
                    address=building.address if building else (address or ""), legal_rep_name=legal_rep_name,
                    legal_rep_id_number=rep, registered_capital=registered_capital, established_on=established_on,
                    status="active", created_at=utcnow())
    session.add(e)
    session.flush()
    return e


def get_department(*, session: Session, code: str) -> Department:
    d = repo.department_by_code(session, code)
    if d is None:
        raise NotFound(Msg('no department with code {code!r}', code=code), fix=Msg('List departments with GET /api/v1/departments.'))
    return d


def department_duties(d: Department) -> list[str]:
    return json.loads(d.duties)


def list_departments(*, session: Session, kind: str | None = None) -> list[Department]:
    """Every department (or those of one kind), by id."""
    return repo.departments(session, kind)


def get_department_by_id(*, session: Session, department_id: int) -> Department:
    d = session.get(Department, department_id)
    if d is None:
        raise NotFound(Msg('no department with id {department_id}', department_id=department_id), fix=Msg('List departments with GET /api/v1/departments.'))
    return d
