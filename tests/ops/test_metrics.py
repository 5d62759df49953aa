"""The metrics grouped in the database give exactly the numbers the former in-Python computation gave
(kept here as the reference), on both engines, with the edge cases a 12345 centre meets: no incidents,
open, suspended, merged, rejected, reopened, returned, unrated, no deadline, no department."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.core.timeutil import as_utc, utcnow
from citybase.geo.models import Building
from citybase.ops.catalogue import service as catalogue
from citybase.ops.metrics import service as metrics
from citybase.ops.metrics.repository import (
    PostgresMetricsRepository,
    SqliteMetricsRepository,
    metrics_repository,
)
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.states import DONE, Status
from citybase.registry import service as registry

BY = ("department", "street", "grid", "category", "channel", "all")
T0 = datetime(2020, 3, 1, tzinfo=UTC)  # a period no other test writes into
WINDOW = (T0, T0 + timedelta(days=40))

# -- the reference: the computation as it was before it moved into the database ----------------------

_COLS = (Incident.id, Incident.status, Incident.channel, Incident.category_code, Incident.main_department_id,
         Incident.street_id, Incident.grid_id, Incident.deadline_at, Incident.registered_at, Incident.dispatched_at,
         Incident.closed_at, Incident.first_contact_at, Incident.satisfaction, Incident.return_count,
         Incident.created_at)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def reference(session: Session, by: str, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    key = {"department": 4, "street": 5, "grid": 6, "category": 3, "channel": 2, "all": None}[by]
    q = select(*_COLS).order_by(Incident.id)
    if since:
        q = q.where(Incident.created_at >= as_utc(since))
    if until:
        q = q.where(Incident.created_at < as_utc(until))
    groups: dict[Any, list[tuple]] = defaultdict(list)
    for row in session.execute(q):
        groups[row[key] if key is not None else "all"].append(tuple(row))
    names = metrics._names(session, by)
    out = []
    for gkey, rows in groups.items():
        reports = len(rows)
        merged = sum(1 for r in rows if r[1] == Status.MERGED)
        cases = [r for r in rows if r[1] != Status.MERGED]
        closed = [r for r in cases if r[1] == Status.CLOSED and r[10] is not None]
        with_deadline = [r for r in closed if r[7] is not None]
        on_time = sum(1 for r in with_deadline if as_utc(r[10]) <= as_utc(r[7]))
        hours = [(as_utc(r[10]) - as_utc(r[8])).total_seconds() / 3600 for r in closed if r[8] is not None]
        rated = [r for r in cases if r[12]]
        dispatched = [r for r in cases if r[9] is not None]
        contacted = sum(1 for r in dispatched
                        if r[11] is not None and as_utc(r[11]) - as_utc(r[9]) <= timedelta(hours=24))
        out.append({
            "key": gkey, "name": names.get(gkey, str(gkey)), "reports": reports, "volume": len(cases),
            "open": sum(1 for r in cases if r[1] not in DONE), "closed": len(closed),
            "on_time_rate": _ratio(on_time, len(with_deadline)),
            "mean_handling_hours": round(statistics.fmean(hours), 2) if hours else None,
            "median_handling_hours": round(statistics.median(hours), 2) if hours else None,
            "satisfaction_rate": _ratio(sum(1 for r in rated if r[12] in ("满意", "基本满意")), len(rated)),
            "repeat_rate": _ratio(merged, reports),
            "return_rate": _ratio(sum(1 for r in dispatched if (r[13] or 0) > 0), len(dispatched)),
            "first_contact_rate": _ratio(contacted, len(dispatched)),
        })
    out.sort(key=lambda r: -r["reports"])
    return out


def reference_hotspots(session: Session, days: int, limit: int) -> dict:
    since = utcnow() - timedelta(days=days)
    rows = session.execute(select(Incident.grid_id, Incident.category_code)
                           .where(Incident.created_at >= since).order_by(Incident.id)).all()
    grids, pairs = Counter(g for g, _ in rows), Counter((g, c) for g, c in rows)
    return {"grids": [(g, n) for g, n in grids.most_common(limit)],
            "recurring": [(g, c, n) for (g, c), n in pairs.most_common(limit) if n >= 3]}


# -- fixtures --------------------------------------------------------------------------------------


class Maker:
    """Adds incidents to an uncommitted session (rolled back at the end of the test)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.buildings = session.execute(select(Building).order_by(Building.id).limit(40)).scalars().all()
        self.departments = [d.id for d in registry.list_departments(session=session)][:6]
        self.categories = sorted(catalogue.category_names(session=session))[:8]
        self.n = 0

    def add(self, *, at: datetime, status: str = Status.RECEIVED, building: int = 0, category: int = 0,
            department: int | None = 0, channel: str = "hotline", **fields: Any) -> Incident:
        self.n += 1
        b = self.buildings[building % len(self.buildings)]
        inc = Incident(code=f"TM{self.n:08d}{random.randrange(10**6):06d}", channel=channel, status=status,
                       category_code=self.categories[category % len(self.categories)], category_confirmed=True,
                       priority="normal", description="测试", lon=b.lon, lat=b.lat, building_id=b.id,
                       grid_id=b.grid_id, community_id=b.community_id, street_id=b.street_id,
                       main_department_id=None if department is None else self.departments[department],
                       routing="{}", created_at=at, updated_at=at, **fields)
        self.session.add(inc)
        return inc


@pytest.fixture
def session(city):
    with Session(city.engine) as s:
        yield s
        s.rollback()


def _edge_cases(m: Maker) -> None:
    """One of each kind of incident, in the first days of the window, hand-checked in the test below."""
    h = timedelta(hours=1)
    t = T0 + timedelta(days=1)
    # two closed on time and rated: 2 h and 5 h of handling, contacted within 24 h
    m.add(at=t, status=Status.CLOSED, registered_at=t, dispatched_at=t, first_contact_at=t + h,
          closed_at=t + 2 * h, deadline_at=t + 48 * h, satisfaction="满意")
    m.add(at=t, status=Status.CLOSED, registered_at=t, dispatched_at=t, first_contact_at=t + 23 * h,
          closed_at=t + 5 * h, deadline_at=t + 48 * h, satisfaction="不满意")
    # closed late, returned once, contacted after 25 h, unrated
    m.add(at=t, status=Status.CLOSED, registered_at=t, dispatched_at=t, first_contact_at=t + 25 * h,
          closed_at=t + 50 * h, deadline_at=t + 48 * h, return_count=1)
    # closed without a deadline and without a registration time (counts as closed, not in the hours)
    m.add(at=t, status=Status.CLOSED, closed_at=t + h)
    # reopened after a 不满意: back to registered, its old closing time still set — not closed
    m.add(at=t, status=Status.REGISTERED, registered_at=t, dispatched_at=t, closed_at=t + 3 * h,
          reopen_count=1, satisfaction="")
    # suspended while dispatched, open; exactly 24 h to the first contact counts
    m.add(at=t, status=Status.DISPATCHED, registered_at=t, dispatched_at=t, first_contact_at=t + 24 * h,
          suspended_at=t + 2 * h, deadline_at=t + 48 * h)
    # rejected (done, not open), merged (a repeat, not a case), still received
    m.add(at=t, status=Status.REJECTED)
    m.add(at=t, status=Status.MERGED, registered_at=t, dispatched_at=t, closed_at=t + h, satisfaction="满意")
    m.add(at=t, status=Status.RECEIVED)
    # no department, and another channel
    m.add(at=t, status=Status.HANDLING, department=None, channel="open311", registered_at=t, dispatched_at=t,
          first_contact_at=t - h)


def test_edge_cases_by_hand_and_by_the_reference(session, city):
    _edge_cases(Maker(session))
    session.flush()
    (row,) = metrics.compute(session=session, by="all", since=WINDOW[0], until=WINDOW[1])
    assert row == {
        "key": "all", "name": "all", "reports": 10, "volume": 9, "open": 4, "closed": 4,
        "on_time_rate": round(2 / 3, 4), "mean_handling_hours": 19.0, "median_handling_hours": 5.0,
        "satisfaction_rate": 0.5, "repeat_rate": 0.1, "return_rate": round(1 / 6, 4),
        "first_contact_rate": round(4 / 6, 4),
    }
    for by in BY:
        assert metrics.compute(session=session, by=by, since=WINDOW[0], until=WINDOW[1]) == \
            reference(session, by, WINDOW[0], WINDOW[1]), by
    no_dept = next(r for r in metrics.compute(session=session, by="department", since=WINDOW[0], until=WINDOW[1])
                   if r["key"] is None)
    assert no_dept["name"] == "None" and no_dept["reports"] == 1 and no_dept["first_contact_rate"] == 1.0


def test_no_incidents_give_no_rows(session, city):
    for by in BY:
        assert metrics.compute(session=session, by=by, since=T0 - timedelta(days=400), until=T0) == []


def test_only_open_incidents_give_no_handling_times(session, city):
    m = Maker(session)
    for i in range(3):
        m.add(at=T0 + timedelta(days=2), status=Status.DISPATCHED, registered_at=T0, dispatched_at=T0, building=i)
    session.flush()
    (row,) = metrics.compute(session=session, by="all", since=WINDOW[0], until=WINDOW[1])
    assert (row["open"], row["closed"], row["mean_handling_hours"], row["median_handling_hours"]) == (3, 0, None, None)
    assert row["on_time_rate"] is None and row["satisfaction_rate"] is None and row["first_contact_rate"] == 0.0


def test_random_incidents_match_the_reference_for_every_grouping_and_period(session, city):
    m = Maker(session)
    rnd = random.Random(6)
    statuses = list(Status)
    for _ in range(400):
        at = T0 + timedelta(seconds=rnd.randrange(40 * 86400), microseconds=rnd.randrange(10**6))
        status = rnd.choice(statuses)

        def later(hours: float, at: datetime = at) -> datetime | None:
            if rnd.random() < 0.15:
                return None
            return at + timedelta(hours=rnd.uniform(-2, hours), microseconds=rnd.randrange(10**6))

        m.add(at=at, status=status, building=rnd.randrange(40), category=rnd.randrange(8),
              department=rnd.choice([None, 0, 1, 2, 3, 4, 5]), channel=rnd.choice(["hotline", "api", "open311"]),
              registered_at=later(1), dispatched_at=later(2), first_contact_at=later(30),
              closed_at=later(200) if status in (Status.CLOSED, Status.REGISTERED, Status.MERGED) else None,
              deadline_at=later(120), return_count=rnd.choice([None, 0, 0, 1, 2]),
              satisfaction=rnd.choice([None, None, "", "满意", "基本满意", "不满意"]))
    session.flush()
    periods = [WINDOW, (T0 + timedelta(days=10), T0 + timedelta(days=17)), (None, None)]
    for since, until in periods:
        for by in BY:
            assert metrics.compute(session=session, by=by, since=since, until=until) == \
                reference(session, by, since, until), (by, since)


def test_hotspots_match_the_reference(session, city):
    m = Maker(session)
    now = utcnow()
    for i in range(30):
        m.add(at=now - timedelta(days=i % 10, minutes=i), building=i % 4, category=i % 3)
    session.flush()
    got = metrics.hotspots(session=session, days=30, limit=5)
    ref = reference_hotspots(session, 30, 5)
    assert [(g["grid_id"], g["reports"]) for g in got["grids"]] == ref["grids"]
    assert [(r["grid_id"], r["category_code"], r["reports"]) for r in got["recurring"]] == ref["recurring"]
    assert got["recurring"] and all(r["reports"] >= 3 for r in got["recurring"])


def test_each_engine_has_its_repository(session, city):
    repo = metrics_repository(session)
    expected = SqliteMetricsRepository if city.db.kind == "sqlite" else PostgresMetricsRepository
    assert type(repo) is expected
