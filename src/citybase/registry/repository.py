"""Queries of the base registries (the same SQL on every engine)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from citybase.registry.models import Department, LegalEntity, Person
from citybase.storage.paging import page_of
from citybase.storage.text import contains


class RegistryRepository:
    """Every query of persons, legal entities and departments, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- persons

    def person_by_id(self, person_id: int) -> Person | None:
        return self.session.get(Person, person_id)

    def person_by_id_number(self, id_number: str) -> Person | None:
        return self.session.scalar(select(Person).where(Person.id_number == id_number))

    @staticmethod
    def persons_query(*, buildings: Select | None = None, building_id: int | None = None, name: str | None = None,
                      id_number: str | None = None, household_no: str | None = None) -> Select:
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

    # --- legal entities

    def entity_by_id(self, entity_id: int) -> LegalEntity | None:
        return self.session.get(LegalEntity, entity_id)

    def entity_by_uscc(self, uscc: str) -> LegalEntity | None:
        return self.session.scalar(select(LegalEntity).where(LegalEntity.uscc == uscc))

    @staticmethod
    def entities_query(*, buildings: Select | None = None, entity_type: str | None = None,
                       industry_code: str | None = None, name: str | None = None, uscc: str | None = None) -> Select:
        """Legal entities filtered (``name`` is a part of the name)."""
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

    # --- departments

    def departments(self, kind: str | None = None) -> list[Department]:
        q = select(Department).order_by(Department.id)
        if kind:
            q = q.where(Department.kind == kind)
        return list(self.session.scalars(q))

    def department_by_code(self, code: str) -> Department | None:
        return self.session.scalar(select(Department).where(Department.code == code))

    def department_by_id(self, department_id: int) -> Department | None:
        return self.session.get(Department, department_id)

    # --- shared

    def add(self, row: Any) -> None:
        """Add a new row and flush it (its id is set)."""
        self.session.add(row)
        self.session.flush()

    def page(self, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
        """The rows of the 1-based page and the query's total."""
        return page_of(self.session, q, page, page_size)

    def counts(self) -> dict[str, int]:
        def n(model: type) -> int:
            return self.session.scalar(select(func.count()).select_from(model)) or 0

        return {"persons": n(Person), "legal_entities": n(LegalEntity), "departments": n(Department)}
