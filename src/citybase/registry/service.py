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
from citybase.kernel import outbox
from citybase.registry.events import (
    LEGAL_ENTITY_REGISTERED,
    PERSON_REGISTERED,
    LegalEntityRegistered,
    PersonRegistered,
)
from citybase.registry.models import ENTITY_TYPES, Department, LegalEntity, Person
from citybase.registry.repository import RegistryRepository


def get_person(*, session: Session, person_id: int) -> Person:
    """The person with this id; NotFound otherwise."""
    p = RegistryRepository(session).person_by_id(person_id)
    if p is None:
        raise NotFound(Msg('no person with id {person_id}', person_id=person_id), fix=Msg('Search with GET /api/v1/persons.'))
    return p


def create_person(*, session: Session, id_number: str, name: str, phone: str | None, household_no: str,
                  building_id: int | None = None, address: str | None = None,
                  sex: str | None = None, birth_date: date | None = None) -> Person:
    """Register a person. The ID number is validated and must agree with sex and birth date when given;
    an address in words is matched to a building when no building id is given. Queues
    ``citybase.registry.person_registered`` in the same transaction; flushes, never commits."""
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
    repo = RegistryRepository(session)
    if repo.person_by_id_number(idn):
        raise Conflict(Msg('a person with ID number {idn}…{idn2} is already registered', idn=idn[:6], idn2=idn[-4:]),
                       fix=Msg('Update the existing record instead of creating a new one.'))
    building = _resolve_building(session, building_id, address)
    person = Person(id_number=idn, name=name.strip(), sex=s, birth_date=born, phone=check_phone(phone),
                    household_no=household_no, building_id=building.id if building else None,
                    registered_address=building.address if building else (address or ""), created_at=utcnow())
    repo.add(person)
    # Tell the rest of the city in the same transaction; events carry ids, never personal fields.
    outbox.queue(session, PERSON_REGISTERED,
                 PersonRegistered(person_id=person.id, building_id=person.building_id).model_dump())
    return person


def _resolve_building(session: Session, building_id: int | None, address: str | None):
    if building_id is not None:
        return geo.get_building(session=session, building_id=building_id)
    if address:  # a registered address must match closely: no guessing a person's home
        return geo.building_at_address(session=session, text=address, min_score=90)
    return None


def get_entity(*, session: Session, entity_id: int) -> LegalEntity:
    """The legal entity with this id; NotFound otherwise."""
    e = RegistryRepository(session).entity_by_id(entity_id)
    if e is None:
        raise NotFound(Msg('no legal entity with id {entity_id}', entity_id=entity_id), fix=Msg('Search with GET /api/v1/legal-entities.'))
    return e


def create_entity(*, session: Session, uscc: str, name: str, entity_type: str, industry_code: str, industry: str,
                  legal_rep_name: str, legal_rep_id_number: str, registered_capital: float,
                  established_on: date, building_id: int | None = None, address: str | None = None) -> LegalEntity:
    """Register a legal entity with a validated GB 32100 code and a validated representative's ID number.
    Queues ``citybase.registry.legal_entity_registered`` in the same transaction; flushes, never commits."""
    code = validate_uscc(uscc)
    rep = validate_id_number(legal_rep_id_number)
    if entity_type not in ENTITY_TYPES:
        raise InvalidInput(Msg('unknown entity_type {entity_type!r}', entity_type=entity_type), fix=Msg('Use one of: {items}.', items=', '.join(ENTITY_TYPES)))
    repo = RegistryRepository(session)
    if repo.entity_by_uscc(code):
        raise Conflict(Msg('legal entity {code} is already registered', code=code), fix=Msg('Update the existing record.'))
    building = _resolve_building(session, building_id, address)
    e = LegalEntity(uscc=code, name=name, entity_type=entity_type, industry_code=industry_code, industry=industry,
                    building_id=building.id if building else None,
                    address=building.address if building else (address or ""), legal_rep_name=legal_rep_name,
                    legal_rep_id_number=rep, registered_capital=registered_capital, established_on=established_on,
                    status="active", created_at=utcnow())
    repo.add(e)
    outbox.queue(session, LEGAL_ENTITY_REGISTERED,
                 LegalEntityRegistered(legal_entity_id=e.id, uscc=e.uscc, building_id=e.building_id).model_dump())
    return e


def get_department(*, session: Session, code: str) -> Department:
    """The department with this GB 32100 code; NotFound otherwise."""
    d = RegistryRepository(session).department_by_code(code)
    if d is None:
        raise NotFound(Msg('no department with code {code!r}', code=code), fix=Msg('List departments with GET /api/v1/departments.'))
    return d


def department_duties(d: Department) -> list[str]:
    """The department's duties (权责), in the order they were declared."""
    return json.loads(d.duties)


def list_departments(*, session: Session, kind: str | None = None) -> list[Department]:
    """Every department (or those of one kind), by id."""
    return RegistryRepository(session).departments(kind)


def get_department_by_id(*, session: Session, department_id: int) -> Department:
    """The department with this id; NotFound otherwise."""
    d = RegistryRepository(session).department_by_id(department_id)
    if d is None:
        raise NotFound(Msg('no department with id {department_id}', department_id=department_id), fix=Msg('List departments with GET /api/v1/departments.'))
    return d


def _buildings_in(session: Session, area_code: str | None):
    """The building-id subquery of an area code (NotFound for an unknown one), or None without a code."""
    if not area_code:
        return None
    return geo.building_ids_in_area(geo.get_area(session=session, code=area_code))


def list_persons(*, session: Session, area_code: str | None = None, building_id: int | None = None,
                 name: str | None = None, id_number: str | None = None, household_no: str | None = None,
                 page: int = 1, page_size: int = 50) -> tuple[list[Person], int]:
    """One page of persons (by id) matching every filter given, and how many match in all."""
    repo = RegistryRepository(session)
    q = repo.persons_query(buildings=_buildings_in(session, area_code), building_id=building_id, name=name,
                           id_number=id_number.upper() if id_number else None, household_no=household_no)
    return repo.page(q, page, page_size)


def list_entities(*, session: Session, area_code: str | None = None, entity_type: str | None = None,
                  industry_code: str | None = None, name: str | None = None, uscc: str | None = None,
                  page: int = 1, page_size: int = 50) -> tuple[list[LegalEntity], int]:
    """One page of legal entities (by id) matching every filter given, and how many match in all."""
    repo = RegistryRepository(session)
    q = repo.entities_query(buildings=_buildings_in(session, area_code), entity_type=entity_type,
                            industry_code=industry_code, name=name, uscc=uscc.upper() if uscc else None)
    return repo.page(q, page, page_size)


def counts(*, session: Session) -> dict[str, int]:
    """How many persons, legal entities and departments the registries hold."""
    return RegistryRepository(session).counts()


def stats(*, session: Session) -> dict:
    """The district, and the counts of the spatial base and of the registries (for the screens)."""
    d = geo.district(session=session)
    return {"district": {"code": d.code, "name": d.name} if d else None, "areas": geo.area_counts(session=session),
            "buildings": geo.building_count(session=session), **counts(session=session)}
