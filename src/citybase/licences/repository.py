"""Queries of the licences (the same SQL on every engine)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from citybase.licences.models import Licence, LicenceKey, LicenceType, LicenceUse
from citybase.storage.paging import page_of


class LicenceRepository:
    """Every query of licence types, licences, their uses and the published keys, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- types

    def types(self, holder_kind: str | None = None) -> list[LicenceType]:
        q = select(LicenceType).order_by(LicenceType.id)
        if holder_kind:
            q = q.where(LicenceType.holder_kind == holder_kind)
        return list(self.session.scalars(q))

    def type_by_key(self, key: str) -> LicenceType | None:
        return self.session.scalar(select(LicenceType).where(LicenceType.key == key))

    def type_by_code(self, code: str) -> LicenceType | None:
        return self.session.scalar(select(LicenceType).where(LicenceType.code == code))

    def type_by_id(self, type_id: int) -> LicenceType | None:
        return self.session.get(LicenceType, type_id)

    # --- licences

    def licence_by_id(self, licence_id: int) -> Licence | None:
        return self.session.get(Licence, licence_id)

    def licence_by_identifier(self, identifier: str) -> Licence | None:
        return self.session.scalar(select(Licence).where(Licence.identifier == identifier))

    @staticmethod
    def licences_query(*, type_id: int | None = None, person_id: int | None = None,
                       legal_entity_id: int | None = None, holders: tuple[int | None, int | None] | None = None,
                       status: str | None = None, today: date | None = None) -> Select:
        """Licences filtered, by id. ``holders`` (person id, entity id) keeps those held by either;
        ``status`` valid/expired/revoked is read against ``today``."""
        q = select(Licence).order_by(Licence.id)
        if type_id is not None:
            q = q.where(Licence.type_id == type_id)
        if person_id is not None:
            q = q.where(Licence.person_id == person_id)
        if legal_entity_id is not None:
            q = q.where(Licence.legal_entity_id == legal_entity_id)
        if holders is not None:
            pid, eid = holders
            conds = [c for c in (Licence.person_id == pid if pid else None,
                                 Licence.legal_entity_id == eid if eid else None) if c is not None]
            q = q.where(or_(*conds)) if conds else q.where(Licence.id.is_(None))
        if status == "revoked":
            q = q.where(Licence.status == "revoked")
        elif status == "expired":
            q = q.where(Licence.status == "valid", Licence.expires_on < today)
        elif status == "valid":
            q = q.where(Licence.status == "valid", or_(Licence.expires_on.is_(None), Licence.expires_on >= today))
        return q

    def valid_of_holder(self, *, type_id: int | None, person_id: int | None, legal_entity_id: int | None,
                        today: date) -> list[Licence]:
        holder = Licence.person_id == person_id if person_id is not None else Licence.legal_entity_id == legal_entity_id
        q = select(Licence).where(and_(holder, Licence.status == "valid",
                                       or_(Licence.expires_on.is_(None), Licence.expires_on >= today)))
        if type_id is not None:
            q = q.where(Licence.type_id == type_id)
        return list(self.session.scalars(q.order_by(Licence.issued_on.desc(), Licence.id.desc())))

    def serials_of(self, type_id: int) -> int:
        from sqlalchemy import func

        return self.session.scalar(select(func.count()).select_from(Licence).where(Licence.type_id == type_id)) or 0

    # --- uses

    @staticmethod
    def uses_query(licence_ids: Select | list[int]) -> Select:
        return select(LicenceUse).where(LicenceUse.licence_id.in_(licence_ids)).order_by(LicenceUse.id.desc())

    # --- keys

    def keys(self) -> list[LicenceKey]:
        return list(self.session.scalars(select(LicenceKey).order_by(LicenceKey.created_at)))

    def key(self, kid: str) -> LicenceKey | None:
        return self.session.get(LicenceKey, kid)

    # --- shared

    def add(self, row: Any) -> None:
        """Add a new row and flush it (its id is set)."""
        self.session.add(row)
        self.session.flush()

    def page(self, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
        return page_of(self.session, q, page, page_size)
