"""The KPIs are grouped sums in the database: pinned on rows made for the purpose (a period of their own), and
the same answers as the former computation over every row in Python (kept here as the reference), on the
living demo's applications, overall, by department, by item and for a period, on both engines."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.core.timeutil import SHANGHAI, as_utc
from citybase.demo.services_simulation import ServicesSimulation
from citybase.registry import service as registry
from citybase.services import service, workdays
from citybase.services.models import (
    Application,
    Item,
    ItemVersion,
    Part,
    Rating,
    Rectification,
    TimelineEntry,
)
from citybase.services.repository import ServicesRepository
from citybase.services.states import OPEN

NOW = datetime(2090, 3, 31, 4, 0, tzinfo=UTC)


def reference(session: Session, *, since: datetime | None = None, until: datetime | None = None,
              department: str | None = None, item: str | None = None, now: datetime = NOW) -> dict[str, Any]:
    """The KPIs as computed before they moved into SQL: every part, version and application in Python."""
    dept_id = registry.get_department(session=session, code=department).id if department else None
    cat = [(i, v) for i, v in ServicesRepository(session).current_versions()
           if (dept_id is None or v.department_id == dept_id) and (item is None or i.code == item)]
    q = (select(Part, ItemVersion, Application).join(ItemVersion, ItemVersion.id == Part.item_version_id)
         .join(Application, Application.id == Part.application_id).where(Application.status != "draft"))
    if since is not None:
        q = q.where(Application.submitted_at >= as_utc(since))
    if until is not None:
        q = q.where(Application.submitted_at < as_utc(until))
    if dept_id is not None:
        q = q.where(Part.department_id == dept_id)
    if item:
        q = q.where(Part.item_code == item)
    rows = session.execute(q).all()
    apps = {a.id: a for _, _, a in rows}
    corrected = set(session.scalars(select(TimelineEntry.application_id).where(
        TimelineEntry.action == "request-correction")))
    total_mat = exempt_mat = 0
    for a in apps.values():
        for e in json.loads(a.exemptions or "[]"):
            total_mat += 1
            exempt_mat += e["status"] in ("from_licence", "from_registry", "from_item")
    done = [a for a in apps.values() if a.status == "done"]
    first_time = [a for a in done if a.outcome == "approved" and a.id not in corrected]
    ratings = [r for r in session.scalars(select(Rating)) if r.application_id in apps]
    rects = [r for r in session.scalars(select(Rectification)) if r.application_id in apps]
    tallies: dict[int, dict[str, Any]] = {}

    def tally(d: int) -> dict[str, Any]:
        return tallies.setdefault(d, {"items": 0, "full": 0, "statutory": 0, "committed": 0, "parts": 0,
                                      "online": 0, "instant": 0, "days": []})
    for _, v in cat:
        t = tally(v.department_id)
        t["items"] += 1
        t["full"] += v.online_level == "full"
        t["statutory"] += v.statutory_days
        t["committed"] += v.committed_days
    for p, v, a in rows:
        t = tally(p.department_id)
        t["parts"] += 1
        t["online"] += a.channel == "online" and v.online_level == "full"
        t["instant"] += v.instant
        if p.status == "completed" and p.accepted_at and p.done_at:
            t["days"].append(workdays.working_days_between(workdays.local_date(p.accepted_at),
                                                           workdays.local_date(p.done_at)))
    rate = service._rate  # noqa: SLF001 - the same rounding

    def indicators(ts: list[dict[str, Any]]) -> dict[str, Any]:
        items_, parts_ = sum(t["items"] for t in ts), sum(t["parts"] for t in ts)
        days = [d for t in ts for d in t["days"]]
        return {"items": items_, "parts": parts_, "full_online_rate": rate(sum(t["full"] for t in ts), items_),
                "actual_online_rate": rate(sum(t["online"] for t in ts), parts_),
                "time_cut_rate": rate(sum(t["statutory"] - t["committed"] for t in ts), sum(t["statutory"] for t in ts)),
                "instant_rate": rate(sum(t["instant"] for t in ts), parts_),
                "average_handling_days": round(sum(days) / len(days), 2) if days else None}

    overall = indicators(list(tallies.values()))
    bad = [r for r in ratings if r.grade <= service.BAD]
    overall.update({
        "applications": len(apps), "done": len(done), "material_exemption_rate": rate(exempt_mat, total_mat),
        "once_done_rate": rate(len(first_time), len(done)), "ratings": len(ratings),
        "good_rating_rate": rate(sum(r.grade >= 4 for r in ratings), len(ratings)), "bad_ratings": len(bad),
        "rectification_rate": rate(sum(x.status == "done" for x in rects), len(bad)),
        "overdue_open_parts": sum(1 for p, _, _ in rows if workdays.light(
            now, warn_at=p.warn_at, deadline_at=p.deadline_at, open_=p.status in OPEN, paused_at=p.paused_at) == "red"),
    })
    return {"overall": overall, "by_department": [{"department_id": d, **indicators([t])}
                                                  for d, t in sorted(tallies.items())]}


def same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["overall"] == want["overall"]
    assert [{k: v for k, v in d.items() if k != "department"} for d in got["by_department"]] == want["by_department"]


def local(y: int, m: int, d: int, h: int = 10, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=SHANGHAI).astimezone(UTC)


def weekday_on_or_after(d: date, weekday: int) -> date:
    while d.weekday() != weekday:
        d += timedelta(days=1)
    return d


@pytest.fixture(scope="module")
def pinned(city, services_tokens) -> dict[str, Any]:  # noqa: ANN001
    """Five applications of one 全程网办 承诺件 item submitted in March 2090 (Asia/Shanghai), a draft beside them."""
    with Session(city.engine) as s:
        item, v = next((i, v) for i, v in ServicesRepository(s).current_versions()
                       if v.online_level == "full" and not v.instant)
        mon = weekday_on_or_after(date(2090, 3, 6), 0)
        n = s.query(Application).count()

        def app(k: int, status: str, channel: str, exemptions: list[str], submitted: datetime,
                outcome: str | None = None) -> Application:
            a = Application(code=f"XH2090{n + k:08d}", status=status, outcome=outcome, applicant_kind="person",
                            filed_by="test", channel=channel, members="[]", form="{}", prefilled="[]",
                            exemptions=json.dumps([{"key": f"m{j}", "status": x} for j, x in enumerate(exemptions)]),
                            consent="[]", provided="[]", promised_days=5, created_at=submitted, updated_at=submitted,
                            submitted_at=None if status == "draft" else submitted)
            s.add(a)
            s.flush()
            return a

        def part(a: Application, status: str, **kw: Any) -> Part:
            p = Part(application_id=a.id, item_version_id=v.id, item_code=item.code, department_id=v.department_id,
                     status=status, after="[]", committed_days=v.committed_days, corrections=0, **kw)
            s.add(p)
            return p

        # submitted 04:00 on 1 March in Shanghai, 20:00 on 28 February in UTC: inside a period of March
        a1 = app(1, "done", "online", ["from_licence", "to_bring", "from_registry"], local(2090, 3, 1, 4), "approved")
        # 受理 07:30 on Monday in Shanghai (23:30 on Sunday in UTC), 办结 on Friday: 4 working days
        part(a1, "completed", decision="approve", accepted_at=local(mon.year, mon.month, mon.day, 7, 30),
             done_at=local(mon.year, mon.month, mon.day + 4, 16))
        a2 = app(2, "done", "window", ["provided", "from_item"], local(2090, 3, 2), "approved")
        fri = mon + timedelta(days=4)
        nxt = mon + timedelta(days=7)
        part(a2, "completed", decision="approve", accepted_at=local(fri.year, fri.month, fri.day, 9),
             done_at=local(nxt.year, nxt.month, nxt.day, 9))  # 1 working day
        s.add(TimelineEntry(application_id=a2.id, at=local(2090, 3, 9), actor="t", action="request-correction"))
        a3 = app(3, "processing", "online", [], local(2090, 3, 3))
        part(a3, "accepted", accepted_at=local(2090, 3, 3), deadline_at=local(2090, 3, 20, 17))  # red at NOW
        a4 = app(4, "processing", "online", [], local(2090, 3, 3))
        part(a4, "correction", accepted_at=local(2090, 3, 3), deadline_at=local(2090, 3, 20, 17),
             paused_at=local(2090, 3, 10))  # past its deadline, but the clock stopped before it
        a5 = app(5, "done", "online", [], local(2090, 3, 4), "refused")
        part(a5, "completed", decision="refuse", accepted_at=local(2090, 3, 5, 9), done_at=local(2090, 3, 5, 15))
        app(6, "draft", "online", ["from_licence"], local(2090, 3, 4))
        before = app(7, "done", "online", ["from_licence"], local(2090, 2, 28, 23), "approved")  # February, local
        part(before, "completed", decision="approve", accepted_at=local(2090, 3, 1), done_at=local(2090, 3, 1))
        s.flush()
        for a, grade in ((a1, 5), (a2, 1), (a5, 2), (before, 4)):
            r = Rating(application_id=a.id, grade=grade, channel="online", by="t", at=local(2090, 3, 25))
            s.add(r)
            s.flush()
            if grade <= service.BAD:
                    s.add(Rectification(rating_id=r.id, application_id=a.id, department_id=v.department_id,
                                    status="done" if a is a2 else "open", deadline_at=local(2090, 4, 1),
                                    created_at=local(2090, 3, 25)))
        s.commit()
        return {"item": item.code, "version": v, "department_id": v.department_id}


MARCH = {"since": datetime(2090, 3, 1, tzinfo=SHANGHAI), "until": datetime(2090, 4, 1, tzinfo=SHANGHAI)}


def test_the_indicators_of_rows_made_for_them(city, pinned):  # noqa: ANN001
    v = pinned["version"]
    with Session(city.engine) as s:
        k = service.kpis(session=s, item=pinned["item"], now=NOW, **MARCH)
        same(k, reference(s, item=pinned["item"], **MARCH))
    o = k["overall"]
    assert (o["applications"], o["done"], o["parts"], o["items"]) == (5, 3, 5, 1)
    assert o["full_online_rate"] == 1.0 and o["instant_rate"] == 0.0
    assert o["actual_online_rate"] == 0.8  # 4 of 5 filed online: a window filing is not 网办
    assert o["material_exemption_rate"] == 0.6  # licence, registry, another item's result of 5 listed
    assert o["once_done_rate"] == 0.3333  # a correction and a refusal are not 一次办成
    assert (o["ratings"], o["good_rating_rate"], o["bad_ratings"], o["rectification_rate"]) == (3, 0.3333, 2, 0.5)
    assert o["overdue_open_parts"] == 1
    assert o["average_handling_days"] == round((4 + 1 + 0) / 3, 2)
    assert o["time_cut_rate"] == round((v.statutory_days - v.committed_days) / v.statutory_days, 4)
    assert [d["department_id"] for d in k["by_department"]] == [pinned["department_id"]]
    assert [(i["item"], i["parts"], i["name"]) for i in k["by_item"]] == [(pinned["item"], 5, v.name)]
    with Session(city.engine) as s:  # the day after the last deadline: both open parts are late once the clock runs
        later = service.kpis(session=s, item=pinned["item"], now=NOW + timedelta(days=1), **MARCH)["overall"]
        assert later["overdue_open_parts"] == 1  # the paused one still reads its clock at the pause
        feb = service.kpis(session=s, item=pinned["item"], since=datetime(2090, 2, 1, tzinfo=SHANGHAI),
                           until=MARCH["since"], now=NOW)["overall"]
    assert (feb["applications"], feb["average_handling_days"], feb["material_exemption_rate"]) == (1, 0.0, 1.0)


def test_handling_days_skip_the_national_day_holiday_on_the_state_council_calendar(city, pinned):  # noqa: ANN001
    """受理 on 30 September 2026, 办结 on 9 October: 1–7 October are 国庆 holidays, so 2 working days (8th, 9th)."""
    v = pinned["version"]
    with Session(city.engine) as s:
        a = Application(code="XH2026092900001", status="done", outcome="approved", applicant_kind="person",
                        filed_by="test", channel="online", members="[]", form="{}", prefilled="[]", exemptions="[]",
                        consent="[]", provided="[]", promised_days=5, created_at=local(2026, 9, 29),
                        updated_at=local(2026, 10, 9), submitted_at=local(2026, 9, 29))
        s.add(a)
        s.flush()
        s.add(Part(application_id=a.id, item_version_id=v.id, item_code=pinned["item"], department_id=v.department_id,
                   status="completed", decision="approve", after="[]", committed_days=v.committed_days, corrections=0,
                   accepted_at=local(2026, 9, 30, 9), done_at=local(2026, 10, 9, 16, 30)))
        s.commit()
        period = {"since": datetime(2026, 9, 29, tzinfo=SHANGHAI), "until": datetime(2026, 9, 30, tzinfo=SHANGHAI)}
        k = service.kpis(session=s, item=pinned["item"], now=NOW, **period)
        same(k, reference(s, item=pinned["item"], **period))
    assert workdays.working_days_between(date(2026, 9, 30), date(2026, 10, 9)) == 2
    assert (k["overall"]["parts"], k["overall"]["average_handling_days"]) == (1, 2.0)


@pytest.fixture(scope="module")
def lived(city, services_tokens, pinned) -> None:  # noqa: ANN001
    """The living demo's applications: filed online and at the window, worked, corrected, rated, rectified."""
    sim = ServicesSimulation(city.engine, rate=120.0, tick=5.0, seed=5)
    for _ in range(10):
        sim.step()
    assert sim.stats["step:complete"] and sim.stats["step:request-correction"]


def test_the_same_answers_as_computing_them_in_python(city, lived):  # noqa: ANN001
    with Session(city.engine) as s:
        now = max(s.scalars(select(Application.submitted_at).where(Application.submitted_at.is_not(None))
                            .where(Application.submitted_at < datetime(2080, 1, 1, tzinfo=UTC))))
        now = as_utc(now) + timedelta(days=30)  # some open parts late by then
        k = service.kpis(session=s, now=now)
        same(k, reference(s, now=now))
        assert k["overall"]["applications"] >= 50 and k["overall"]["overdue_open_parts"] > 0
        assert k["overall"]["once_done_rate"] and k["overall"]["average_handling_days"] is not None
        assert sum(i["parts"] for i in k["by_item"]) == k["overall"]["parts"]
        assert sum(i["items"] for i in k["by_item"]) == k["overall"]["items"]
        busiest = max(k["by_item"], key=lambda i: i["parts"])
        one = service.kpis(session=s, item=busiest["item"], now=now)
        same(one, reference(s, item=busiest["item"], now=now))
        assert {x: one["overall"][x] for x in busiest if x in one["overall"]} == \
            {x: busiest[x] for x in busiest if x in one["overall"]}
        dept = s.scalar(select(ItemVersion.department_id).join(Item, Item.id == ItemVersion.item_id)
                        .where(Item.code == busiest["item"]))
        code = registry.get_department_by_id(session=s, department_id=dept).code
        same(service.kpis(session=s, department=code, now=now), reference(s, department=code, now=now))
        today = as_utc(now).astimezone(SHANGHAI).date() - timedelta(days=30)
        period = {"since": datetime.combine(today, datetime.min.time(), SHANGHAI),
                  "until": datetime.combine(today + timedelta(days=1), datetime.min.time(), SHANGHAI)}
        same(service.kpis(session=s, now=now, **period), reference(s, now=now, **period))
