"""Every query of intake: the duplicate search, the writes of a new report (one INSERT per table; the
incident's id and code taken in its own INSERT, engine-specific: one class per engine), and the reads of the
Open311 GeoReport v2 endpoint."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    insert,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from citybase.ops.workflow.models import Incident, TimelineEntry
from citybase.ops.workflow.states import DONE, OPEN, Status
from citybase.storage.db import Base, is_postgres


class IntakeRepository:
    """Reads of intake (plain rows where it is the hot path), in one session; ``of`` picks the engine's class."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def of(session: Session) -> IntakeRepository:
        """The repository for the session's engine."""
        return IntakeRepository(session) if is_postgres(session) else SqliteIntakeRepository(session)

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
        """(id, lat, lon, description) of open incidents of a category since a time reported from this phone
        (found by the phone's index: a caller has few reports, a category thousands)."""
        q = self._open_of(category_code, since, exclude_id)
        return list(self.session.execute(q.where(Incident.reporter_phone == phone).limit(limit)))

    def incident(self, incident_id: int) -> Incident | None:
        """The incident with this id (from the session's identity map when loaded)."""
        return self.session.get(Incident, incident_id)

    def made_by_many(self, source_refs: list[str]) -> list[Row]:
        """(source_ref, id, code, status, main_department_id, parent_id) of the incidents these sources (IoT
        alarms' alarm_ids) made, found by the unique index on ``source_ref``, 500 references a query."""
        out: list[Row] = []
        for chunk in range(0, len(source_refs), 500):
            out += self.session.execute(
                select(Incident.source_ref, Incident.id, Incident.code, Incident.status, Incident.main_department_id,
                       Incident.parent_id).where(Incident.source_ref.in_(source_refs[chunk:chunk + 500])))
        return out

    def codes(self, ids: set[int]) -> dict[int, str]:
        """The codes of these incidents, by id."""
        if not ids:
            return {}
        return {i: code for i, code in self.session.execute(select(Incident.id, Incident.code)
                                                            .where(Incident.id.in_(ids)))}


class SqliteIntakeRepository(IntakeRepository):
    # SQLite's statistics count NULLs as one value: with most reports phoneless, the phone's index looks
    # useless and the planner walks every open incident of the category instead (~10 ms at 100,000 open);
    # INDEXED BY makes it take the phone's index.
    _SAME_CALLER = text(
        "SELECT id, lat, lon, description FROM ops_incidents INDEXED BY ix_ops_incidents_reporter_phone "
        "WHERE reporter_phone = :phone AND category_code = :category AND status IN :statuses "
        "AND created_at >= :since AND id != :exclude LIMIT :limit").bindparams(
        bindparam("statuses", expanding=True), bindparam("since", type_=Incident.__table__.c.created_at.type))

    def open_same_caller(self, category_code: str, since: datetime, *, exclude_id: int | None, phone: str,
                         limit: int = 20) -> list[Row]:
        """(id, lat, lon, description) of open incidents of a category since a time reported from this phone."""
        return list(self.session.execute(self._SAME_CALLER, {
            "phone": phone, "category": category_code, "statuses": [str(s) for s in OPEN], "since": since,
            "exclude": -1 if exclude_id is None else exclude_id, "limit": limit}))


class IntakeWriter:
    """The writes of one report, each table in one statement, in the caller's transaction (never commits).

    The incident's code is its day and id (``2026112100000042``); the id is taken inside the incident's INSERT
    (``_next_id``, per engine), so the row is written once, with its code, and nothing is updated after."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def of(session: Session) -> IntakeWriter:
        """The writer for the session's engine."""
        return PostgresIntakeWriter(session) if is_postgres(session) else SqliteIntakeWriter(session)

    def _next_id(self) -> Any:
        raise NotImplementedError

    def _code(self, day: Any, id_: Any) -> Any:
        raise NotImplementedError

    def insert_incident(self, values: dict[str, Any], day: str) -> tuple[int, str]:
        """INSERT the incident with these column values (every column but id and code; ``version`` 1 when the
        model has one and it is not given); returns its (id, code): ``day`` and the id in 8 digits."""
        table = Incident.__table__
        params = {c.name: values.get(c.name) for c in table.c if c.name not in ("id", "code")}
        if "version" in params and params["version"] is None:  # optimistic versioning, when the model has it
            params["version"] = 1
        id_, code = self.session.execute(self._incident_statement(), {**params, "day_": day}).one()
        return id_, code

    def _incident_statement(self) -> Any:
        # Built once per engine class; each call only binds its values (the compiled form is cached too).
        stmt = _STATEMENTS.get(type(self))
        if stmt is None:
            table = Incident.__table__
            cols = [c.name for c in table.c if c.name not in ("id", "code")]
            n = select(self._next_id().label("id")).subquery("n")
            rows = select(n.c.id, self._code(bindparam("day_", type_=String), n.c.id),
                          *(bindparam(c, type_=table.c[c].type) for c in cols))
            stmt = insert(table).from_select(["id", "code", *cols], rows).returning(table.c.id, table.c.code)
            _STATEMENTS[type(self)] = stmt
        return stmt

    def insert_rows(self, model: type[Base], rows: list[dict[str, Any]]) -> None:
        """INSERT these rows (the same keys in each) in one execution."""
        if rows:
            self.session.execute(insert(model.__table__), rows)


_STATEMENTS: dict[type, Any] = {}


class SqliteIntakeWriter(IntakeWriter):
    # SQLite has one writer: the INSERT holds the write lock while it reads max(id), so no other writer
    # (thread or process) can take the same id.
    def _next_id(self) -> Any:
        return select(func.coalesce(func.max(Incident.id), 0) + 1).scalar_subquery()

    def _code(self, day: Any, id_: Any) -> Any:
        return day + func.printf("%08d", id_)


class PostgresIntakeWriter(IntakeWriter):
    def _next_id(self) -> Any:
        return func.nextval(func.pg_get_serial_sequence(Incident.__tablename__, "id"))

    def _code(self, day: Any, id_: Any) -> Any:
        return day + func.lpad(cast(id_, String), 8, "0")


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
