"""Every query of the IoT domain. The hot path is :meth:`IotRepository.insert_readings`: a batch of datapoints
written at once and told apart from repeats by the primary key — COPY into a temporary table then
``INSERT … ON CONFLICT DO NOTHING RETURNING`` on PostgreSQL, a multi-row ``INSERT OR IGNORE … RETURNING`` on
SQLite (under the single writer; what it returns are the rows that were new)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from citybase.iot.models import Alarm, DeadLetter, Device, Feed, Reading, RuleState
from citybase.storage.db import is_postgres, sqlite_datetime, take_writer
from citybase.storage.paging import page_of
from citybase.storage.text import contains, startswith

Key = tuple[int, str, datetime]  # device pk, attribute, observed at (UTC)
READING_COLUMNS = ("device_pk", "attr", "observed_at", "value", "text", "received_at")
SQLITE_CHUNK = 1000  # readings per INSERT on SQLite (6 parameters each, below its limit of 32,766)


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


# what the ingest keeps of a device in memory (service.Known)
DIRECTORY_COLUMNS = (Device.id, Device.device_id, Device.type_code, Device.secret_hash, Device.department_id, Device.lon,
                     Device.lat, Device.grid_code, Device.state, Device.last_seen_at)


def _filtered(query: Any, type_code: str | None, state: str | None, department_id: int | None) -> Any:
    """The device filters the list and the map share."""
    if type_code:
        query = query.where(Device.type_code == type_code)
    if state:
        query = query.where(Device.state == state)
    if department_id is not None:
        query = query.where(Device.department_id == department_id)
    return query


def _sqlite_time(t: datetime) -> str:
    """A time in UTC as SQLAlchemy writes a DateTime on SQLite, so that keys compare."""
    return sqlite_datetime(t if t.tzinfo is UTC else _utc(t))


class IotRepository:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.pg = is_postgres(session)

    # --- devices
    def device(self, device_id: str) -> Device | None:
        return self.s.scalar(select(Device).where(Device.device_id == device_id))

    def device_by_pk(self, pk: int) -> Device | None:
        return self.s.get(Device, pk)

    def _devices_where(self, column: Any, values: Sequence[Any]) -> list[Device]:
        """Devices whose ``column`` is one of ``values``, 500 at a time (bound parameters stay few)."""
        out: list[Device] = []
        for i in range(0, len(values), 500):
            out.extend(self.s.scalars(select(Device).where(column.in_(list(values[i:i + 500])))))
        return out

    def devices_by_ids(self, device_ids: Sequence[str]) -> dict[str, Device]:
        return {d.device_id: d for d in self._devices_where(Device.device_id, device_ids)}

    def devices_by_pks(self, pks: Sequence[int]) -> dict[int, Device]:
        return {d.id: d for d in self._devices_where(Device.id, pks)}

    def device_rows(self) -> list[Any]:
        """Every device as a plain row (the ingest's in-process directory)."""
        return list(self.s.execute(select(*DIRECTORY_COLUMNS)))

    def device_row(self, device_id: str) -> Any:
        return self.s.execute(select(*DIRECTORY_COLUMNS).where(Device.device_id == device_id)).first()

    def add_devices(self, rows: list[dict[str, Any]]) -> None:
        self.s.execute(insert(Device.__table__), rows)

    def list_devices(self, *, type_code: str | None, state: str | None, department_id: int | None,
                     grid_prefix: str | None, q: str | None, page: int, page_size: int) -> tuple[list[Device], int]:
        query = _filtered(select(Device).order_by(Device.id), type_code, state, department_id)
        if grid_prefix:
            query = query.where(startswith(Device.grid_code, grid_prefix))
        if q:
            query = query.where(or_(contains(Device.device_id, q), contains(Device.name, q)))
        return page_of(self.s, query, page, page_size)

    def map_points(self, *, type_code: str | None, state: str | None, department_id: int | None,
                   limit: int) -> list[Any]:
        query = select(Device.device_id, Device.type_code, Device.state, Device.lon, Device.lat, Device.name)
        return list(self.s.execute(_filtered(query, type_code, state, department_id).order_by(Device.id).limit(limit)))

    def touch_devices(self, seen: dict[int, datetime]) -> None:
        """last_seen_at moved forward (never back) and an offline device online again."""
        if not seen:
            return
        from sqlalchemy import bindparam

        t = Device.__table__
        stmt = (update(t).where(t.c.id == bindparam("b_id"), t.c.state != "decommissioned",
                                or_(t.c.last_seen_at.is_(None), t.c.last_seen_at < bindparam("b_at")))
                .values(last_seen_at=bindparam("b_at"), state="online"))
        self.s.execute(stmt, [{"b_id": pk, "b_at": at} for pk, at in sorted(seen.items())])

    def silent_devices(self, type_code: str, before: datetime, limit: int = 5000) -> list[Device]:
        """Online devices of a type not seen since ``before`` (or never seen and created before it)."""
        return list(self.s.scalars(select(Device).where(
            Device.type_code == type_code, Device.state == "online",
            or_(Device.last_seen_at < before, and_(Device.last_seen_at.is_(None), Device.created_at < before)))
            .order_by(Device.id).limit(limit)))

    def health(self) -> list[Any]:
        """Devices by type and department: total, online, offline (decommissioned ones left out)."""
        return list(self.s.execute(
            select(Device.type_code, Device.department_id, func.count(),
                   func.sum(case((Device.state == "online", 1), else_=0)),
                   func.sum(case((Device.state == "offline", 1), else_=0)))
            .where(Device.state != "decommissioned").group_by(Device.type_code, Device.department_id)
            .order_by(Device.type_code, Device.department_id)))

    # --- readings
    def insert_readings(self, rows: Sequence[tuple[int, str, datetime, float | None, str | None, datetime]]) -> set[Key]:
        """Write the datapoints; returns the keys that were new (a repeat is not written again)."""
        if not rows:
            return set()
        if not self.pg:
            take_writer(self.s)  # the raw cursor below is not seen by the session's writer lock
        raw = self.s.connection().connection.driver_connection
        cur = raw.cursor()
        if self.pg:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS iot_readings_in (device_pk integer, attr varchar(32), "
                        "observed_at timestamptz, value double precision, text varchar(32), received_at timestamptz)"
                        " ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY iot_readings_in ({', '.join(READING_COLUMNS)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            cur.execute(f"INSERT INTO iot_readings ({', '.join(READING_COLUMNS)}) "
                        f"SELECT DISTINCT ON (device_pk, attr, observed_at) {', '.join(READING_COLUMNS)} "
                        "FROM iot_readings_in ON CONFLICT DO NOTHING RETURNING device_pk, attr, observed_at")
            new = {(pk, attr, _utc(at)) for pk, attr, at in cur.fetchall()}
            cur.execute("TRUNCATE iot_readings_in")
            return new
        # one multi-row INSERT OR IGNORE … RETURNING per SQLITE_CHUNK rows: SQLite returns the rows it inserted,
        # not those the key ignored (one statement per row cost a statement's overhead per datapoint)
        head = f"INSERT OR IGNORE INTO iot_readings ({', '.join(READING_COLUMNS)}) VALUES "
        new = set()
        for i in range(0, len(rows), SQLITE_CHUNK):
            chunk = rows[i:i + SQLITE_CHUNK]
            keyed: dict[tuple[int, str, str], Any] = {}
            params: list[Any] = []
            received: tuple[Any, str] = (None, "")  # a message's datapoints share their received time
            for r in chunk:
                at = _sqlite_time(r[2])
                keyed[(r[0], r[1], at)] = r
                if r[5] is not received[0]:
                    received = (r[5], _sqlite_time(r[5]))
                params += (r[0], r[1], at, r[3], r[4], received[1])
            cur.execute(head + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)) +
                        " RETURNING device_pk, attr, observed_at", params)
            for pk, attr, at in cur.fetchall():
                r = keyed[(pk, attr, at)]
                new.add((r[0], r[1], _utc(r[2])))
        return new

    def readings(self, device_pk: int, *, attr: str | None, since: datetime | None, limit: int) -> list[Any]:
        q = select(Reading.attr, Reading.observed_at, Reading.value, Reading.text).where(Reading.device_pk == device_pk)
        if attr:
            q = q.where(Reading.attr == attr)
        if since is not None:
            q = q.where(Reading.observed_at >= since)
        return list(self.s.execute(q.order_by(Reading.observed_at.desc()).limit(limit)))

    def reading_count(self) -> int:
        return int(self.s.scalar(select(func.count()).select_from(Reading)) or 0)

    # --- dead letters
    def add_dead_letters(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.s.execute(insert(DeadLetter.__table__), rows)

    def unseen_dead_letters(self, rows: list[dict[str, Any]], since: datetime) -> list[dict[str, Any]]:
        """The rows not kept already: the same device, reason, payload and channel received since ``since`` is a
        copy of the same message (the bridge carried it again after a reconnect), kept once."""
        out, seen = [], set()
        for r in rows:
            key = (r["device_id"], r["reason_code"], r["payload"], r["via"])
            if key in seen:
                continue
            seen.add(key)
            device = DeadLetter.device_id.is_(None) if r["device_id"] is None else DeadLetter.device_id == r["device_id"]
            if self.s.scalar(select(DeadLetter.id).where(
                    device, DeadLetter.received_at >= since, DeadLetter.reason_code == r["reason_code"],
                    DeadLetter.via == r["via"], DeadLetter.payload == r["payload"]).limit(1)) is None:
                out.append(r)
        return out

    def dead_letters(self, *, device_id: str | None, reason_code: str | None, page: int,
                     page_size: int) -> tuple[list[DeadLetter], int]:
        q = select(DeadLetter).order_by(DeadLetter.id.desc())
        if device_id:
            q = q.where(DeadLetter.device_id == device_id)
        if reason_code:
            q = q.where(DeadLetter.reason_code == reason_code)
        return page_of(self.s, q, page, page_size)

    def dead_letter_counts(self) -> list[Any]:
        return list(self.s.execute(select(DeadLetter.reason_code, func.count()).group_by(DeadLetter.reason_code)
                                   .order_by(func.count().desc())))

    # --- rules
    def rule_states(self, device_pks: Sequence[int]) -> dict[tuple[int, str], RuleState]:
        out: dict[tuple[int, str], RuleState] = {}
        for i in range(0, len(device_pks), 500):
            q = select(RuleState).where(RuleState.device_pk.in_(list(device_pks[i:i + 500])))
            if self.pg:
                q = q.with_for_update()
            for st in self.s.scalars(q):
                out[(st.device_pk, st.rule)] = st
        return out

    def add_rule_state(self, st: RuleState) -> None:
        self.s.add(st)

    def lock_devices(self, pks: Sequence[int]) -> None:
        """Hold these devices' rows for this transaction (PostgreSQL), in id order, so two workers evaluating
        the same device's rules take turns instead of racing; SQLite's single writer already does."""
        if self.pg and pks:
            self.s.execute(select(Device.id).where(Device.id.in_(sorted(pks))).order_by(Device.id).with_for_update())

    # --- alarms
    def add_alarm(self, alarm: Alarm) -> Alarm:
        self.s.add(alarm)
        self.s.flush()
        return alarm

    def alarm(self, alarm_id: int, *, lock: bool = False) -> Alarm | None:
        q = select(Alarm).where(Alarm.id == alarm_id)
        if lock and self.pg:
            q = q.with_for_update()
        return self.s.scalar(q)

    def alarms(self, *, state: str | None, device_pk: int | None, severity: str | None, department_id: int | None,
               page: int, page_size: int) -> tuple[list[Alarm], int]:
        q = select(Alarm).order_by(Alarm.id.desc())
        if state == "open":
            q = q.where(Alarm.state != "cleared")
        elif state:
            q = q.where(Alarm.state == state)
        if device_pk is not None:
            q = q.where(Alarm.device_pk == device_pk)
        if severity:
            q = q.where(Alarm.severity == severity)
        if department_id is not None:
            q = q.where(Alarm.device_pk.in_(select(Device.id).where(Device.department_id == department_id)))
        return page_of(self.s, q, page, page_size)

    def alarm_counts(self) -> list[Any]:
        return list(self.s.execute(select(Alarm.state, Alarm.severity, func.count())
                                   .group_by(Alarm.state, Alarm.severity)))

    # --- feeds
    def feeds(self, active_only: bool = True) -> list[Feed]:
        q = select(Feed).order_by(Feed.id)
        if active_only:
            q = q.where(Feed.active.is_(True))
        return list(self.s.scalars(q))

    def feed(self, feed_id: int) -> Feed | None:
        return self.s.get(Feed, feed_id)

    def feed_by_name(self, name: str) -> Feed | None:
        return self.s.scalar(select(Feed).where(Feed.name == name))

    def add_feed(self, feed: Feed) -> Feed:
        self.s.add(feed)
        self.s.flush()
        return feed

    def delete_feed(self, feed: Feed) -> None:
        self.s.execute(delete(Feed).where(Feed.id == feed.id))
