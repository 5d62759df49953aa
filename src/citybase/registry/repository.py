"""Queries of the base registries."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from citybase.registry.models import Department, LegalEntity, Person
from citybase.storage.text import contains


def persons_query(*, buildings: Select | None = None, building_id: int | None = None,
                  name: str | None = None, id_number: str | None = None, household_no: str | None = None) -> Select:
    """Persons filtered; ``buildings`` is a subquery of building ids (from the spatial base) to live in."""
    q = select(Person).order_by(Person.id)
    if buildings is not None:
        q = q.where(Person.building_id.in_(buildings))
    if building_id is not None:
        q = q.where(Person.building_id == building_id)
    if name:
        q = q.where(Person.name == name)
    if id_number:
        q = q.where(Person.id_number == id_number)
    if household_no:
        q = q.where(Person.household_no == household_no)
    return q


def entities_query(*, buildings: Select | None = None, entity_type: str | None = None,
                   industry_code: str | None = None, name: str | None = None, uscc: str | None = None) -> Select:
    q = select(LegalEntity).order_by(LegalEntity.id)
    if buildings is not None:
        q = q.where(LegalEntity.building_id.in_(buildings))
    if entity_type:
        q = q.where(LegalEntity.entity_type == entity_type)
    if industry_code:
        q = q.where(LegalEntity.industry_code == industry_code)
    if name:
        q = q.where(contains(LegalEntity.name, name))
    if uscc:
        q = q.where(LegalEntity.uscc == uscc)
    return q


def departments(session: Session, kind: str | None = None) -> list[Department]:
    q = select(Department).order_by(Department.id)
    if kind:
        q = q.where(Department.kind == kind)
    return list(session.scalars(q))


def department_by_code(session: Session, code: str) -> Department | None:
    return session.scalar(select(Department).where(Department.code == code))


def person_by_id_number(session: Session, id_number: str) -> Person | None:
    return session.scalar(select(Person).where(Person.id_number == id_number))


def entity_by_uscc(session: Session, uscc: str) -> LegalEntity | None:
    return session.scalar(select(LegalEntity).where(LegalEntity.uscc == uscc))


def counts(session: Session) -> dict[str, int]:
    def n(model: type) -> int:
        return session.scalar(select(func.count()).select_from(model)) or 0

    return {"persons": n(Person), "legal_entities": n(LegalEntity), "departments": n(Department)}
