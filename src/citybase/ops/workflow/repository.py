"""Every query of the workflow: incidents, tasks, timelines and supervisions.

The SQL is the same on both engines (row locks: ``FOR UPDATE`` on PostgreSQL, which SQLite's dialect
leaves out); a query that must differ by engine gets a subclass per engine here, chosen by the session's
dialect, so the service never sees the difference."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select, update
from sqlalchemy.orm import Session

from citybase.core.masking import mask_text
from citybase.ops.workflow.models import Incident, Supervision, Task, TimelineEntry
from citybase.ops.workflow.states import OPEN
from citybase.storage.paging import page_of
from citybase.storage.text import contains

TASK_OPEN = ("pending", "accepted")  # a task still to be done (the others: done, returned, cancelled)


class IncidentRepository:
    """Reads of the workflow's tables in one session (writes go through the session's unit of work)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------ incidents

    def incident(self, incident_id: int, *, lock: bool = False) -> Incident | None:
        """The incident with this id (locked for this transaction with ``lock``), or None."""
        q = select(Incident).where(Incident.id == incident_id)
        if lock:
            q = q.with_for_update()
        return self.session.scalar(q)

    def incidents(self, ids: Iterable[int]) -> list[Incident]:
        """The incidents with these ids (any order)."""
        ids = set(ids)
        if not ids:
            return []
        return list(self.session.scalars(select(Incident).where(Incident.id.in_(ids))))

    def incidents_after(self, after_id: int, limit: int) -> list[Incident]:
        """Up to ``limit`` incidents with an id above ``after_id``, by id."""
        return list(self.session.scalars(select(Incident).where(Incident.id > after_id).order_by(Incident.id)
                                         .limit(limit)))

    def listing(self, *, statuses: list[str] | None, equal: list[tuple[str, Any]], text: str | None, now: datetime,
                page: int, page_size: int, sees_text_of: Callable[[int | None], bool] | None = None,
                ) -> tuple[list[Incident], int]:
        """One page of incidents filtered by status, (column, value) equalities and text, most urgent first,
        and the total. With ``sees_text_of`` (main department -> whether the reader sees texts in full) the
        text matches what the reader sees: masked where it sees it masked, so a guess of a hidden phone, ID
        number or name finds nothing (and the total tells nothing)."""
        query = select(Incident)
        if statuses is not None:
            query = query.where(Incident.status.in_(statuses))
        for col, val in equal:
            if val is not None:
                query = query.where(getattr(Incident, col) == val)
        if text:
            # the stored text holds every piece of the search between the "*" a masked reader may copy
            pieces = [x for x in text.split("*") if x]
            query = query.where(and_(*(contains(Incident.description, x) for x in pieces)) | (Incident.code == text))
        # red (past deadline) first, then yellow, then the rest; within each, the nearest deadline first
        light = case((Incident.deadline_at.is_(None), 3), (Incident.deadline_at < now, 0),
                     (Incident.warn_at <= now, 1), else_=2)
        query = query.order_by(light, Incident.deadline_at.is_(None), Incident.deadline_at, Incident.id)
        if text and sees_text_of is not None:
            return self._page_as_seen(query, text, sees_text_of, page, page_size)
        return page_of(self.session, query, page, page_size)

    def _page_as_seen(self, query: Select, text: str, sees_text_of: Callable[[int | None], bool], page: int,
                      page_size: int) -> tuple[list[Incident], int]:
        # Masking only replaces characters with "*", so the SQL match above is a superset, narrowed here.
        cols = query.with_only_columns(Incident.id, Incident.code, Incident.description, Incident.main_department_id)
        ids = [i for i, code, desc, dept in self.session.execute(cols)
               if code == text or text in (desc if sees_text_of(dept) else mask_text(desc))]
        chosen = ids[(page - 1) * page_size:page * page_size]
        by_id = {i.id: i for i in self.incidents(chosen)}
        return [by_id[i] for i in chosen], len(ids)

    def last_rating_since_close(self, incident_id: int) -> TimelineEntry | None:
        """The first rating (or reopening) after the incident's last 结案, or None if this closure is unrated."""
        closed_by = self.session.scalar(select(func.max(TimelineEntry.id)).where(
            TimelineEntry.incident_id == incident_id, TimelineEntry.action == "close"))
        return self.session.scalar(select(TimelineEntry).where(
            TimelineEntry.incident_id == incident_id, TimelineEntry.id > (closed_by or 0),
            TimelineEntry.action.in_(("rate", "reopen"))).order_by(TimelineEntry.id).limit(1))

    def department_has_task(self, incident_id: int, department_id: int) -> bool:
        """Whether the department has a live (not returned or cancelled) task on the incident."""
        return bool(self.session.scalar(select(func.count()).select_from(Task).where(
            Task.incident_id == incident_id, Task.department_id == department_id,
            Task.status.not_in(("returned", "cancelled")))))

    def reported_by(self, user_id: int | None, *, limit: int = 200) -> list[Incident]:
        """The incidents a user reported, newest first."""
        q = select(Incident).where(Incident.reporter_user_id == user_id).order_by(Incident.id.desc()).limit(limit)
        return list(self.session.scalars(q))

    def take_overdue(self, now: datetime, *, limit: int = 1000) -> list[Any]:
        """Mark open, unsuspended incidents past their deadline and not yet supervised as supervised now, and
        return (id, code, status, main department, deadline) of those this transaction won: candidates taken
        with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite renders none: one writer at a time), then one
        compare-and-set ``UPDATE … WHERE supervised_at IS NULL … RETURNING``."""
        due = (Incident.status.in_(OPEN), Incident.deadline_at < now, Incident.suspended_at.is_(None),
               Incident.supervised_at.is_(None))
        ids = list(self.session.scalars(select(Incident.id).where(*due).order_by(Incident.deadline_at, Incident.id)
                                        .limit(limit).with_for_update(skip_locked=True)))
        if not ids:
            return []
        won = self.session.execute(
            update(Incident).where(Incident.id.in_(ids), *due)
            .values(supervised_at=now, version=Incident.version + 1)
            .returning(Incident.id, Incident.code, Incident.status, Incident.main_department_id, Incident.deadline_at)
            .execution_options(synchronize_session=False)).all()
        raised = {row.id for row in won}
        for obj in list(self.session.identity_map.values()):  # copies this session holds are now out of date
            if isinstance(obj, Incident) and obj.id in raised:
                self.session.expire(obj)
        return sorted(tuple(r) for r in won)

    def waiting(self, *, limit: int) -> list[tuple[int, str]]:
        """(id, status) of open, unsuspended incidents, the longest-waiting first."""
        return [tuple(r) for r in self.session.execute(
            select(Incident.id, Incident.status).where(Incident.status.in_(OPEN), Incident.suspended_at.is_(None))
            .order_by(Incident.updated_at, Incident.id).limit(limit))]

    def unrated_closed(self, *, limit: int) -> list[int]:
        """Ids of closed incidents the reporter has not rated yet."""
        return list(self.session.scalars(select(Incident.id).where(Incident.status == "closed",
                                                                   Incident.satisfaction.is_(None)).limit(limit)))

    # ------------------------------------------------------------ tasks

    def tasks(self, incident_id: int) -> list[Task]:
        """Every task of an incident, oldest first."""
        return list(self.session.scalars(select(Task).where(Task.incident_id == incident_id).order_by(Task.id)))

    def open_tasks(self, incident_id: int) -> list[Task]:
        """The pending or accepted tasks of an incident."""
        return list(self.session.scalars(select(Task).where(Task.incident_id == incident_id,
                                                            Task.status.in_(TASK_OPEN))))

    def count_open_tasks(self, incident_id: int) -> int:
        """How many tasks of an incident are still pending or accepted."""
        return self.session.scalar(select(func.count()).select_from(Task).where(
            Task.incident_id == incident_id, Task.status.in_(TASK_OPEN))) or 0

    def done_tasks(self, incident_id: int) -> list[Task]:
        """The tasks of an incident reported done."""
        return list(self.session.scalars(select(Task).where(Task.incident_id == incident_id, Task.status == "done")))

    def open_task(self, incident_id: int, *, task_id: int | None = None,
                  department_id: int | None = None) -> Task | None:
        """The first open task of an incident (that task, or that department's, when given)."""
        q = select(Task).where(Task.incident_id == incident_id, Task.status.in_(TASK_OPEN))
        if task_id is not None:
            q = q.where(Task.id == task_id)
        elif department_id is not None:
            q = q.where(Task.department_id == department_id)
        return self.session.scalar(q.order_by(Task.id))

    def department_tasks(self, department_id: int, statuses: list[str], *, limit: int = 500) -> list[Task]:
        """A department's tasks in these states, oldest first."""
        q = select(Task).where(Task.department_id == department_id,
                               Task.status.in_(statuses)).order_by(Task.id).limit(limit)
        return list(self.session.scalars(q))

    # ------------------------------------------------------------ timeline and supervision

    def timeline(self, incident_id: int) -> list[TimelineEntry]:
        """An incident's timeline, oldest first."""
        return list(self.session.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
                                         .order_by(TimelineEntry.id)))

    def last_entry(self, incident_id: int) -> TimelineEntry | None:
        """The newest timeline entry of an incident."""
        return self.session.scalar(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
                                   .order_by(TimelineEntry.id.desc()).limit(1))

    def unresolved_supervisions(self, incident_id: int) -> list[Supervision]:
        """The supervisions of an incident not resolved yet."""
        return list(self.session.scalars(select(Supervision).where(Supervision.incident_id == incident_id,
                                                                   Supervision.resolved_at.is_(None))))

    def open_supervisions(self, *, department_id: int | None = None, limit: int = 500) -> list[Supervision]:
        """Unresolved supervisions, newest first (of one department when given)."""
        q: Select = select(Supervision).where(Supervision.resolved_at.is_(None)).order_by(Supervision.id.desc()).limit(limit)
        if department_id is not None:
            q = q.where(Supervision.department_id == department_id)
        return list(self.session.scalars(q))
