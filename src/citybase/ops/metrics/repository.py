"""Every query of the metrics: the incident columns they are computed from, and counts by status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from citybase.core.timeutil import as_utc
from citybase.ops.workflow.models import Incident

# The columns compute() reads, in this order (it indexes rows by position).
_COLS = (Incident.id, Incident.status, Incident.channel, Incident.category_code, Incident.main_department_id,
         Incident.street_id, Incident.grid_id, Incident.deadline_at, Incident.registered_at, Incident.dispatched_at,
         Incident.closed_at, Incident.first_contact_at, Incident.satisfaction, Incident.return_count,
         Incident.created_at)


class MetricsRepository:
    """Reads for the metrics, in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def rows(self, *, since: datetime | None, until: datetime | None) -> list[Row]:
        """The ``_COLS`` of every report taken in [since, until)."""
        q = select(*_COLS)
        if since:
            q = q.where(Incident.created_at >= as_utc(since))
        if until:
            q = q.where(Incident.created_at < as_utc(until))
        return list(self.session.execute(q))

    def grid_categories(self, *, since: datetime) -> list[Row]:
        """(grid id, category code) of every report since a time."""
        return list(self.session.execute(select(Incident.grid_id, Incident.category_code)
                                         .where(Incident.created_at >= since)).all())

    def count_by_status(self) -> dict[str, int]:
        """How many incidents are in each status."""
        rows = self.session.execute(select(Incident.status, func.count()).group_by(Incident.status))
        return {status: n for status, n in rows}
