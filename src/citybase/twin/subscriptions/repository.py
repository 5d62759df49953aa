"""Every query of the subscriptions: rows by tenant and id, the tenant's revision (bumped with an upsert in the
transaction of every change), the throttling claim and the delivery record as single compare-and-set or
increment UPDATEs (so processes sharing the work never lose a count), the periodic subscriptions that are due
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and the previous instances of attributes for showChanges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from citybase.storage.db import is_postgres
from citybase.twin.models import TwinHistory
from citybase.twin.subscriptions import delivery
from citybase.twin.subscriptions.models import TwinSubscription, TwinSubscriptionRevision


class SubscriptionRepository:
    """Queries on one session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.pg = is_postgres(session)

    # -- subscriptions
    def get(self, tenant: str, sub_id: str) -> TwinSubscription | None:
        return self.s.scalars(select(TwinSubscription).where(TwinSubscription.tenant == tenant,
                                                             TwinSubscription.sub_id == sub_id)).first()

    def lock(self, tenant: str, sub_id: str) -> TwinSubscription | None:
        """The row, held for this transaction's update (FOR UPDATE; on SQLite the writer lock taken by the
        revision bump that every change makes first)."""
        q = select(TwinSubscription).where(TwinSubscription.tenant == tenant, TwinSubscription.sub_id == sub_id)
        return self.s.scalars(q.with_for_update() if self.pg else q).first()

    def by_pks(self, pks: Sequence[int]) -> list[TwinSubscription]:
        return list(self.s.scalars(select(TwinSubscription).where(TwinSubscription.pk.in_(list(pks)))
                                   .order_by(TwinSubscription.pk))) if pks else []

    def page(self, tenant: str, limit: int, offset: int) -> list[TwinSubscription]:
        return list(self.s.scalars(select(TwinSubscription).where(TwinSubscription.tenant == tenant)
                                   .order_by(TwinSubscription.pk).limit(limit).offset(offset))) if limit else []

    def count(self, tenant: str) -> int:
        return int(self.s.scalar(select(func.count()).select_from(TwinSubscription)
                                 .where(TwinSubscription.tenant == tenant)) or 0)

    def matching_rows(self, tenant: str) -> list[Any]:
        """What the in-memory index needs of every subscription of the tenant (not the delivery record)."""
        return list(self.s.execute(select(TwinSubscription.pk, TwinSubscription.spec, TwinSubscription.active,
                                          TwinSubscription.expires_at, TwinSubscription.throttling)
                                   .where(TwinSubscription.tenant == tenant)))

    def add(self, row: TwinSubscription) -> TwinSubscription:
        self.s.add(row)
        self.s.flush()
        return row

    def remove(self, row: TwinSubscription) -> None:
        self.s.delete(row)
        self.s.flush()

    # -- the tenant's revision
    def revision(self, tenant: str) -> int:
        """0 when the tenant never had a subscription."""
        return int(self.s.scalar(select(TwinSubscriptionRevision.revision)
                                 .where(TwinSubscriptionRevision.tenant == tenant)) or 0)

    def bump(self, tenant: str) -> None:
        """One more change of the tenant's subscriptions (an upsert: no race on the tenant's first one)."""
        insert = pg_insert if self.pg else sqlite_insert
        stmt = insert(TwinSubscriptionRevision).values(tenant=tenant, revision=1)
        self.s.execute(stmt.on_conflict_do_update(index_elements=["tenant"],
                                                  set_={"revision": TwinSubscriptionRevision.revision + 1}))

    # -- matching and delivery
    def claim(self, pk: int, now: datetime, throttling: float) -> bool:
        """Take the right to queue a notification now, if the last one is at least ``throttling`` seconds ago
        (compare-and-set: of two processes matching at once, one wins)."""
        q = (update(TwinSubscription)
             .where(TwinSubscription.pk == pk,
                    or_(TwinSubscription.last_queued_at.is_(None),
                        TwinSubscription.last_queued_at <= now - timedelta(seconds=throttling)))
             .values(last_queued_at=now).execution_options(synchronize_session=False))
        return (self.s.execute(q).rowcount or 0) == 1

    def reschedule(self, pk: int, due: datetime | None, then: datetime) -> bool:
        """Move a periodic subscription's next notification from ``due`` to ``then`` (``delivery.reschedule``)."""
        return delivery.reschedule(self.s, TwinSubscription, pk, due, then)

    def record(self, pk: int, now: datetime, *, ok: bool, error: str | None) -> None:
        """Count one delivery attempt in the subscription's record (``delivery.record``)."""
        delivery.record(self.s, TwinSubscription, pk, now, ok=ok, error=error)

    def due(self, now: datetime, limit: int) -> list[TwinSubscription]:
        """Active periodic subscriptions whose next notification is due (``delivery.due``)."""
        return delivery.due(self.s, TwinSubscription, now, limit)

    def latest_instances(self, tenant: str, entity_id: str, attrs: Sequence[str],
                         before: datetime) -> dict[str, list[tuple[dict[str, Any], bool]]]:
        """For each attribute, its latest instance per datasetId before ``before`` and whether that was a deletion."""
        if not attrs:
            return {}
        rows = self.s.execute(
            select(TwinHistory.attr, TwinHistory.dataset_id, TwinHistory.instance, TwinHistory.deleted)
            .where(TwinHistory.tenant == tenant, TwinHistory.entity_id == entity_id,
                   TwinHistory.attr.in_(list(attrs)), TwinHistory.recorded_at < before)
            .order_by(TwinHistory.recorded_at.desc(), TwinHistory.id.desc()).limit(50 * len(attrs)))
        out: dict[str, list[tuple[dict[str, Any], bool]]] = {}
        seen: set[tuple[str, str | None]] = set()
        for attr, ds, inst, deleted in rows:
            if (attr, ds) not in seen:
                seen.add((attr, ds))
                out.setdefault(attr, []).append((inst, bool(deleted)))
        return out

    def previous_instances(self, tenant: str, entity_id: str, attrs: Sequence[str],
                           before: datetime) -> dict[str, list[dict[str, Any]]]:
        """For each attribute, its instances (one per datasetId) as they were before ``before``."""
        if not attrs:
            return {}
        rows = self.s.execute(
            select(TwinHistory.attr, TwinHistory.dataset_id, TwinHistory.instance)
            .where(TwinHistory.tenant == tenant, TwinHistory.entity_id == entity_id,
                   TwinHistory.attr.in_(list(attrs)), TwinHistory.recorded_at < before,
                   TwinHistory.deleted.is_(False))
            .order_by(TwinHistory.recorded_at.desc(), TwinHistory.id.desc()).limit(50 * len(attrs)))
        out: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, str | None]] = set()
        for attr, ds, inst in rows:
            if (attr, ds) not in seen:
                seen.add((attr, ds))
                out.setdefault(attr, []).append(inst)
        return out
