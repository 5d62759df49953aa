"""Every query of 一网通办 (the same SQL on every engine)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from citybase.services.models import (
    Application,
    Bundle,
    Item,
    ItemVersion,
    Part,
    Rating,
    Rectification,
    TimelineEntry,
)
from citybase.storage.paging import page_of
from citybase.storage.text import contains


class ServicesRepository:
    """Queries of items, bundles, applications, parts, timelines, ratings and rectifications, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> Any:
        self.session.add(row)
        self.session.flush()
        return row

    def page(self, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
        return page_of(self.session, q, page, page_size)

    # --- catalogue

    def item_by_code(self, code: str) -> Item | None:
        return self.session.scalar(select(Item).where(Item.code == code))

    def version_of(self, item_id: int, version: int) -> ItemVersion | None:
        return self.session.scalar(select(ItemVersion).where(ItemVersion.item_id == item_id,
                                                             ItemVersion.version == version))

    def version_by_id(self, version_id: int) -> ItemVersion | None:
        return self.session.get(ItemVersion, version_id)

    def versions_of(self, item_id: int) -> list[ItemVersion]:
        return list(self.session.scalars(select(ItemVersion).where(ItemVersion.item_id == item_id)
                                         .order_by(ItemVersion.version)))

    def items_query(self, *, department_id: int | None = None, kind: str | None = None, name: str | None = None,
                    online_level: str | None = None) -> Select:
        """Current versions of active items, joined to their item, by code."""
        q = (select(Item, ItemVersion).join(ItemVersion, (ItemVersion.item_id == Item.id)
                                            & (ItemVersion.version == Item.current_version))
             .where(Item.active.is_(True)).order_by(Item.code))
        if department_id is not None:
            q = q.where(ItemVersion.department_id == department_id)
        if kind:
            q = q.where(ItemVersion.kind == kind)
        if name:
            q = q.where(contains(ItemVersion.name, name))
        if online_level:
            q = q.where(ItemVersion.online_level == online_level)
        return q

    def page_rows(self, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
        total = self.session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
        rows = list(self.session.execute(q.limit(page_size).offset((page - 1) * page_size)).all())
        return rows, total

    def current_versions(self) -> list[tuple[Item, ItemVersion]]:
        return [tuple(r) for r in self.session.execute(self.items_query()).all()]  # type: ignore[misc]

    def bundle_by_code(self, code: str) -> Bundle | None:
        return self.session.scalar(select(Bundle).where(Bundle.code == code))

    def bundle_by_id(self, bundle_id: int) -> Bundle | None:
        return self.session.get(Bundle, bundle_id)

    def bundles(self) -> list[Bundle]:
        return list(self.session.scalars(select(Bundle).order_by(Bundle.id)))

    # --- applications

    def application(self, application_id: int, *, for_update: bool = False) -> Application | None:
        if for_update:
            return self.session.scalar(select(Application).where(Application.id == application_id)
                                       .with_for_update())
        return self.session.get(Application, application_id)

    def applications_query(self, *, person_id: int | None = None, legal_entity_id: int | None = None,
                           owner_user_id: int | None = None, status: str | None = None,
                           department_id: int | None = None, bundle_id: int | None = None,
                           mine: bool = False) -> Select:
        """Applications, newest first; ``mine`` keeps those of the person, the entity or the owner given."""
        q = select(Application).order_by(Application.id.desc())
        if mine:
            conds = []
            if person_id is not None:
                conds.append((Application.person_id == person_id) & (Application.applicant_kind == "person"))
            if legal_entity_id is not None:
                conds.append((Application.legal_entity_id == legal_entity_id)
                             & (Application.applicant_kind == "entity"))
            if owner_user_id is not None:
                conds.append(Application.owner_user_id == owner_user_id)
            if not conds:
                return q.where(Application.id.is_(None))
            cond = conds[0]
            for c in conds[1:]:
                cond = cond | c
            q = q.where(cond)
        if status:
            q = q.where(Application.status == status)
        if bundle_id is not None:
            q = q.where(Application.bundle_id == bundle_id)
        if department_id is not None:
            q = q.where(Application.id.in_(select(Part.application_id).where(Part.department_id == department_id)))
        return q

    def next_code(self, prefix: str) -> str:
        """The next application code of the day (prefix = XH + yyyymmdd)."""
        last = self.session.scalar(select(func.max(Application.code)).where(Application.code.like(f"{prefix}%")))
        n = int(last[len(prefix):]) + 1 if last else 1
        return f"{prefix}{n:06d}"

    def parts_of(self, application_id: int) -> list[Part]:
        return list(self.session.scalars(select(Part).where(Part.application_id == application_id).order_by(Part.id)))

    def earlier_result(self, *, kind: str, holder_id: int, item_code: str) -> str | None:
        """The code of the holder's latest application whose part of ``item_code`` was approved and completed."""
        holder = Application.person_id if kind == "person" else Application.legal_entity_id
        return self.session.scalar(
            select(Application.code).join(Part, Part.application_id == Application.id)
            .where(holder == holder_id, Application.applicant_kind == kind, Part.item_code == item_code,
                   Part.status == "completed", Part.decision == "approve")
            .order_by(Application.id.desc()).limit(1))

    def part(self, part_id: int) -> Part | None:
        return self.session.get(Part, part_id)

    def parts_query(self, *, department_id: int | None, statuses: tuple[str, ...] | None) -> Select:
        q = select(Part).order_by(Part.deadline_at.is_(None), Part.deadline_at, Part.id)
        if department_id is not None:
            q = q.where(Part.department_id == department_id)
        if statuses:
            q = q.where(Part.status.in_(statuses))
        return q

    def overdue_parts(self, now: datetime, statuses: tuple[str, ...]) -> list[Part]:
        return list(self.session.scalars(
            select(Part).where(Part.status.in_(statuses), Part.deadline_at < now, Part.paused_at.is_(None),
                               Part.supervised_at.is_(None)).order_by(Part.id).limit(500)))

    def timeline(self, application_id: int) -> list[TimelineEntry]:
        return list(self.session.scalars(select(TimelineEntry).where(TimelineEntry.application_id == application_id)
                                         .order_by(TimelineEntry.id)))

    def unrated_done(self, limit: int) -> list[int]:
        return list(self.session.scalars(select(Application.id).where(
            Application.status == "done", ~Application.id.in_(select(Rating.application_id)))
            .order_by(Application.done_at).limit(limit)))

    # --- ratings

    def rating_of(self, application_id: int) -> Rating | None:
        return self.session.scalar(select(Rating).where(Rating.application_id == application_id))

    def rectification_of(self, application_id: int) -> Rectification | None:
        return self.session.scalar(select(Rectification).where(Rectification.application_id == application_id))

    def rectification(self, rect_id: int) -> Rectification | None:
        return self.session.get(Rectification, rect_id)

    def rectifications_query(self, *, department_id: int | None, status: str | None) -> Select:
        q = select(Rectification).order_by(Rectification.id.desc())
        if department_id is not None:
            q = q.where(Rectification.department_id == department_id)
        if status:
            q = q.where(Rectification.status == status)
        return q

    # --- KPIs: the rows they are computed from, in a period

    def kpi_rows(self, *, since: datetime | None, until: datetime | None, department_id: int | None,
                 item_code: str | None) -> list[tuple[Part, ItemVersion, Application]]:
        q = (select(Part, ItemVersion, Application).join(ItemVersion, ItemVersion.id == Part.item_version_id)
             .join(Application, Application.id == Part.application_id)
             .where(Application.status != "draft"))
        if since is not None:
            q = q.where(Application.submitted_at >= since)
        if until is not None:
            q = q.where(Application.submitted_at < until)
        if department_id is not None:
            q = q.where(Part.department_id == department_id)
        if item_code:
            q = q.where(Part.item_code == item_code)
        return [tuple(r) for r in self.session.execute(q).all()]  # type: ignore[misc]

    def ratings_for(self, application_ids: set[int]) -> list[Rating]:
        if not application_ids:
            return []
        return list(self.session.scalars(select(Rating).where(Rating.application_id.in_(application_ids))))

    def rectifications_for(self, application_ids: set[int]) -> list[Rectification]:
        if not application_ids:
            return []
        return list(self.session.scalars(select(Rectification)
                                         .where(Rectification.application_id.in_(application_ids))))

    def timeline_actions(self, application_ids: set[int], action: str) -> set[int]:
        """The applications (of those given) whose timeline has an entry of ``action``."""
        if not application_ids:
            return set()
        return set(self.session.scalars(select(TimelineEntry.application_id).distinct()
                                        .where(TimelineEntry.application_id.in_(application_ids),
                                               TimelineEntry.action == action)))
