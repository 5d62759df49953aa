"""Every query of the metrics, grouped in the database: one query for the counts and rates of each
group, one for the mean and median handling time, one for the hotspots, one for the counts by status.

What differs between the engines is behind one class per engine (chosen by ``metrics_repository``):
the length of a time span (exact to the microsecond on both) and the median (``percentile_cont`` on
PostgreSQL, a window function on SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, Select, and_, cast, extract, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from citybase.core.timeutil import as_utc
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.states import DONE, Status

# The column each grouping reads; "all" is one group with no column.
GROUP_COLUMNS: dict[str, Any] = {
    "department": Incident.main_department_id, "street": Incident.street_id, "grid": Incident.grid_id,
    "category": Incident.category_code, "channel": Incident.channel, "all": None,
}

I = Incident  # noqa: E741 - short alias for the expressions below
CASE = I.status != Status.MERGED  # a merged report is a repeat, not a case
CLOSED = and_(CASE, I.status == Status.CLOSED, I.closed_at.is_not(None))
HANDLED = and_(CLOSED, I.registered_at.is_not(None))  # closed cases whose handling time is known
DISPATCHED = and_(CASE, I.dispatched_at.is_not(None))


class MetricsRepository:
    """Reads for the metrics, in one session. Use ``metrics_repository(session)`` for the engine's class."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- what each engine spells differently ------------------------------------------------------

    def hours(self, start: Any, end: Any) -> ColumnElement[float]:
        """``end - start`` in hours as a float, computed as ``seconds / 3600`` with the seconds exact."""
        raise NotImplementedError

    def within(self, start: Any, end: Any, span: timedelta) -> ColumnElement[bool]:
        """``end - start <= span``, exact to the microsecond."""
        raise NotImplementedError

    def handling(self, *, by: str, since: datetime | None,
                 until: datetime | None) -> dict[Any, tuple[float, float]]:
        """(mean, median) handling hours of each group, over the closed cases with a registration time
        among the reports taken in [since, until); groups with none are left out."""
        raise NotImplementedError

    def group_column(self, by: str) -> Any:
        """The column a grouping groups by (None for "all")."""
        return GROUP_COLUMNS[by]

    # -- the same on both engines ------------------------------------------------------------------

    @staticmethod
    def _period(q: Select, since: datetime | None, until: datetime | None) -> Select:
        if since:
            q = q.where(I.created_at >= as_utc(since))
        if until:
            q = q.where(I.created_at < as_utc(until))
        return q

    def figures(self, *, by: str, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """The counts of each group of reports taken in [since, until), as one grouped query:
        ``key, first_id, reports, merged, volume, open, closed, with_deadline, on_time, rated, satisfied,
        dispatched, returned, contacted`` (``first_id``: the group's lowest incident id)."""
        col = self.group_column(by)
        count = func.count
        q = select(
            func.min(I.id).label("first_id"),
            count().label("reports"),
            count().filter(I.status == Status.MERGED).label("merged"),
            count().filter(CASE).label("volume"),
            count().filter(CASE, I.status.not_in(list(DONE))).label("open"),
            count().filter(CLOSED).label("closed"),
            count().filter(CLOSED, I.deadline_at.is_not(None)).label("with_deadline"),
            count().filter(CLOSED, I.deadline_at.is_not(None), I.closed_at <= I.deadline_at).label("on_time"),
            count().filter(CASE, I.satisfaction.is_not(None), I.satisfaction != "").label("rated"),
            count().filter(CASE, I.satisfaction.in_(("满意", "基本满意"))).label("satisfied"),
            count().filter(DISPATCHED).label("dispatched"),
            count().filter(DISPATCHED, func.coalesce(I.return_count, 0) > 0).label("returned"),
            count().filter(DISPATCHED, I.first_contact_at.is_not(None),
                           self.within(I.dispatched_at, I.first_contact_at, timedelta(hours=24))).label("contacted"),
        ).select_from(I)
        if col is not None:
            q = q.add_columns(col.label("key")).group_by(col)
        rows = [dict(r._mapping) for r in self.session.execute(self._period(q, since, until))]
        for r in rows:
            r.setdefault("key", "all")
        return [r for r in rows if r["reports"]]  # an ungrouped count over no rows is one row of zeros

    def hotspot_grids(self, *, since: datetime, limit: int) -> list[tuple[int, int]]:
        """(grid id, reports) of the grids with most reports since a time, most first (ties: the
        grid reported first)."""
        n = func.count().label("n")
        q = (select(I.grid_id, n).where(I.created_at >= as_utc(since)).group_by(I.grid_id)
             .order_by(n.desc(), func.min(I.id)).limit(limit))
        return [(g, c) for g, c in self.session.execute(q)]

    def recurring(self, *, since: datetime, at_least: int, limit: int) -> list[tuple[int, str, int]]:
        """(grid id, category code, reports) of the pairs reported ``at_least`` times since a time, most first."""
        n = func.count().label("n")
        q = (select(I.grid_id, I.category_code, n).where(I.created_at >= as_utc(since))
             .group_by(I.grid_id, I.category_code).having(func.count() >= at_least)
             .order_by(n.desc(), func.min(I.id)).limit(limit))
        return [(g, c, k) for g, c, k in self.session.execute(q)]

    def count_by_status(self) -> dict[str, int]:
        """How many incidents are in each status."""
        rows = self.session.execute(select(I.status, func.count()).group_by(I.status))
        return {status: n for status, n in rows}


def _unindexed(col: Any) -> Any:
    return UnaryExpression(col, operator=custom_op("+"), type_=col.type)


class SqliteMetricsRepository(MetricsRepository):
    """SQLite stores a time as text ``YYYY-MM-DD HH:MM:SS.ffffff``: whole seconds from ``unixepoch()``,
    microseconds from the text, so spans are exact (``julianday`` is a double of days, good to ~40 µs)."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        dbapi = session.get_bind().dialect.dbapi
        self._unixepoch = getattr(dbapi, "sqlite_version_info", (0,)) >= (3, 38)  # parses about twice as fast

    def _microseconds(self, start: Any, end: Any) -> ColumnElement[int]:
        def secs(t: Any) -> ColumnElement[int]:
            return func.unixepoch(t) if self._unixepoch else cast(func.strftime("%s", t), Integer)

        def micros(t: Any) -> ColumnElement[int]:
            return cast(func.substr(t, 21, 6), Integer)  # '' (no fraction) and '+00:00' cast to 0

        return (secs(end) - secs(start)) * 1_000_000 + (micros(end) - micros(start))

    def hours(self, start: Any, end: Any) -> ColumnElement[float]:
        return self._microseconds(start, end) / 1_000_000.0 / 3600.0

    def within(self, start: Any, end: Any, span: timedelta) -> ColumnElement[bool]:
        return self._microseconds(start, end) <= span // timedelta(microseconds=1)

    # ``+col`` is the same value, but SQLite will not use the column's index for it. Walking an index
    # (to group, or to find the closed ones: most incidents are) costs a random row read per incident;
    # a table scan and a sort is two to three times faster. SQLite has no statistics to see it.

    def group_column(self, by: str) -> Any:
        col = GROUP_COLUMNS[by]
        return None if col is None else _unindexed(col)

    def handling(self, *, by: str, since: datetime | None,
                 until: datetime | None) -> dict[Any, tuple[float, float]]:
        col = self.group_column(by)
        spans = self._period(select((col if col is not None else literal("all")).label("key"),
                                    self.hours(I.registered_at, I.closed_at).label("h"))
                             .where(_unindexed(I.status) == Status.CLOSED, I.closed_at.is_not(None),
                                    I.registered_at.is_not(None)), since, until).subquery()
        part = [spans.c.key] if col is not None else None
        # one window (same partition and order, the whole partition as the frame for n and the mean): one sort
        window = {"partition_by": part, "order_by": spans.c.h}
        ranked = select(spans.c.key, spans.c.h, func.row_number().over(**window).label("rn"),
                        func.count().over(**window, rows=(None, None)).label("n"),
                        func.avg(spans.c.h).over(**window, rows=(None, None)).label("mean")).subquery()
        # the middle row (n odd) or the two middle rows (n even), averaged: (a + b) / 2 as statistics.median
        middle = or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
        q = select(ranked.c.key, func.max(ranked.c.mean), func.avg(ranked.c.h)).where(middle).group_by(ranked.c.key)
        return {k: (mean, median) for k, mean, median in self.session.execute(q)}


class PostgresMetricsRepository(MetricsRepository):
    """PostgreSQL subtracts ``timestamptz`` exactly; the median is ``percentile_cont(0.5)``."""

    def hours(self, start: Any, end: Any) -> ColumnElement[float]:
        return cast(extract("epoch", end - start), Float) / 3600.0

    def within(self, start: Any, end: Any, span: timedelta) -> ColumnElement[bool]:
        return end - start <= span

    def handling(self, *, by: str, since: datetime | None,
                 until: datetime | None) -> dict[Any, tuple[float, float]]:
        col = GROUP_COLUMNS[by]
        h = self.hours(I.registered_at, I.closed_at)
        q = self._period(select((col if col is not None else literal("all")).label("key"), func.avg(h),
                                func.percentile_cont(0.5).within_group(h)).where(HANDLED), since, until)
        if col is not None:
            q = q.group_by(col)
        return {k: (mean, median) for k, mean, median in self.session.execute(q) if median is not None}


def metrics_repository(session: Session) -> MetricsRepository:
    """The metrics repository for the session's engine."""
    if session.get_bind().dialect.name == "postgresql":
        return PostgresMetricsRepository(session)
    return SqliteMetricsRepository(session)

