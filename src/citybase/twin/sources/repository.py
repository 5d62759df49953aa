"""Queries on registrations (few per tenant: matching happens in Python on the rows of a tenant)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.twin.sources.models import TwinRegistration, TwinSourceSubscription


class RegistrationRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, tenant: str, registration_id: str) -> TwinRegistration | None:
        return self.s.scalars(select(TwinRegistration).where(TwinRegistration.tenant == tenant,
                                                             TwinRegistration.registration_id == registration_id)).first()

    def all(self, tenant: str) -> list[TwinRegistration]:
        return list(self.s.scalars(select(TwinRegistration).where(TwinRegistration.tenant == tenant)
                                   .order_by(TwinRegistration.id)))

    def count(self, tenant: str) -> int:
        return self.s.scalar(select(func.count()).select_from(TwinRegistration)
                             .where(TwinRegistration.tenant == tenant)) or 0

    def add(self, row: TwinRegistration) -> None:
        self.s.add(row)
        self.s.flush()

    def remove(self, row: TwinRegistration) -> None:
        self.s.delete(row)
        self.s.flush()


class SourceSubscriptionRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, tenant: str, sub_id: str) -> TwinSourceSubscription | None:
        return self.s.scalars(select(TwinSourceSubscription).where(TwinSourceSubscription.tenant == tenant,
                                                                   TwinSourceSubscription.sub_id == sub_id)).first()

    def all(self, tenant: str) -> list[TwinSourceSubscription]:
        return list(self.s.scalars(select(TwinSourceSubscription).where(TwinSourceSubscription.tenant == tenant)
                                   .order_by(TwinSourceSubscription.id)))

    def page(self, tenant: str, limit: int, offset: int) -> list[TwinSourceSubscription]:
        return list(self.s.scalars(select(TwinSourceSubscription).where(TwinSourceSubscription.tenant == tenant)
                                   .order_by(TwinSourceSubscription.id).limit(limit).offset(offset)))

    def count(self, tenant: str) -> int:
        return self.s.scalar(select(func.count()).select_from(TwinSourceSubscription)
                             .where(TwinSourceSubscription.tenant == tenant)) or 0

    def add(self, row: TwinSourceSubscription) -> None:
        self.s.add(row)
        self.s.flush()

    def remove(self, row: TwinSourceSubscription) -> None:
        self.s.delete(row)
        self.s.flush()
