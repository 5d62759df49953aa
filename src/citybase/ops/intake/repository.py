"""Every query of intake: the duplicate search, and the reads of the Open311 GeoReport v2 endpoint."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from citybase.ops.workflow.models import Incident, TimelineEntry
from citybase.ops.workflow.states import DONE, OPEN, Status


class IntakeRepository:
    """Reads of intake (plain rows where it is the hot path), in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _open_of(self, category_code: str, since: datetime, exclude_id: int | None) -> Select:
        # Plain rows, not ORM objects: with many open incidents nearby this is the hot path of intake.
        q = select(Incident.id, Incident.lat, Incident.lon, Incident.description).where(
            Incident.category_code == category_code, Incident.status.in_(OPEN), Incident.created_at >= since)
        if exclude_id is not None:
            q = q.where(Incident.id != exclude_id)
        return q

    def open_nearby(self, category_code: str, since: datetime, *, exclude_id: int | None,
                    lat: tuple[float, float], lon: tuple[float, float], limit: int = 200) -> list[Row]:
        """(id, lat, lon, description) of open incidents of a category since a time, inside a lat/lon box."""
        q = self._open_of(category_code, since, exclude_id)
        return list(self.session.execute(q.where(Incident.lat.between(*lat), Incident.lon.between(*lon)).limit(limit)))

    def open_same_caller(self, category_code: str, since: datetime, *, exclude_id: int | None, phone: str,
                         limit: int = 20) -> list[Row]:
        """(id, lat, lon, description) of open incidents of a category since a time reported from this phone."""
        q = self._open_of(category_code, since, exclude_id)
        return list(self.session.execute(q.where(Incident.reporter_phone == phone).limit(limit)))

    def incident(self, incident_id: int) -> Incident | None:
        """The incident with this id (from the session's identity map when loaded)."""
        return self.session.get(Incident, incident_id)


def _closed_condition() -> tuple[Any, list[Any]]:
    """SQL for 'the request is closed' (merged ones follow up to three parents) and the joins it needs."""
    joins, prev, merged_chain, conds = [], Incident, [], [Incident.status.in_(DONE)]
    for _ in range(3):
        parent = aliased(Incident)
        joins.append((parent, parent.id == prev.parent_id))
        merged_chain.append(func.coalesce(prev.status, "") == Status.MERGED)
        conds.append(and_(*merged_chain, func.coalesce(parent.status, "").in_(DONE)))
        prev = parent
    return or_(*conds), joins


class Open311Repository:
    """The reads of the GeoReport v2 endpoint, in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_code(self, code: str) -> Incident | None:
        """The incident whose code is this service_request_id."""
        return self.session.scalar(select(Incident).where(Incident.code == code))

    def by_codes(self, codes: list[str]) -> dict[str, Incident]:
        """The incidents with these codes, by code."""
        if not codes:
            return {}
        return {i.code: i for i in self.session.scalars(select(Incident).where(Incident.code.in_(codes)))}

    def by_token(self, token: str) -> Incident | None:
        """The incident created with this Open311 token."""
        return self.session.scalar(select(Incident).where(Incident.open311_token == token))

    def timelines(self, ids: list[int], actions: tuple[str, ...] | None = None) -> Iterable[TimelineEntry]:
        """The timeline entries of these incidents (of these actions only, when given), in order, 500 ids a query."""
        for chunk in range(0, len(ids), 500):
            q = select(TimelineEntry).where(TimelineEntry.incident_id.in_(ids[chunk:chunk + 500]))
            if actions:
                q = q.where(TimelineEntry.action.in_(actions))
            yield from self.session.scalars(q.order_by(TimelineEntry.id))

    def requests(self, *, start: datetime, end: datetime, codes: list[str], closed: bool | None, page: int,
                 size: int) -> list[Incident]:
        """Incidents created in [start, end], of these categories (all when empty), closed or open (either when
        None; a merged one is as closed as the request it joined), newest first, one page."""
        query = select(Incident).where(Incident.created_at >= start, Incident.created_at <= end)
        if codes:
            query = query.where(Incident.category_code.in_(codes))
        if closed is not None:
            condition, joins = _closed_condition()
            for target, on in joins:
                query = query.outerjoin(target, on)
            query = query.where(condition if closed else not_(condition))
        query = query.order_by(Incident.created_at.desc(), Incident.id.desc())
        return list(self.session.scalars(query.offset((page - 1) * size).limit(size)))
