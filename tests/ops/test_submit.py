"""One intake command: every channel's report is checked once, located once, classified only without a
category, and stored with one INSERT per row and no UPDATE of the new incident — on both engines.

(Named to run after test_loop: a new in-process durable is delivered every event the bus still holds, and
test_loop's publication test reads the first 200.)"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput
from citybase.geo.models import Building
from citybase.ops.intake import service
from citybase.ops.intake.schemas import IntakeCommand
from citybase.ops.notifications.models import Reporter
from citybase.ops.workflow.models import Incident, Task, TimelineEntry
from citybase.storage.db import make_sessionmaker

_used = iter(range(10_000))


def _building(city) -> Building:
    with Session(city.engine) as s:
        rows = s.scalars(select(Building).where(Building.use == "residential").order_by(Building.id)).all()
    return rows[(200 + next(_used) * 5) % len(rows)]


@dataclass
class _Suggestion:
    code: str
    confidence: float


class CountingClassifier:
    """A real suggester (always the same answer) that counts how often it is asked."""

    def __init__(self, code: str = "02001", confidence: float = 0.5) -> None:
        self.calls, self.code, self.confidence = 0, code, confidence

    def suggest(self, text: str, k: int = 3) -> list[_Suggestion]:
        self.calls += 1
        return [_Suggestion(self.code, self.confidence)]


class Statements:
    """The INSERTs and UPDATEs an engine runs, by (verb, table), while the block runs."""

    def __init__(self, engine) -> None:
        self.engine, self.seen = engine, Counter()

    def _on(self, conn, cursor, statement, parameters, context, executemany) -> None:
        m = re.match(r"\s*(INSERT INTO|UPDATE)\s+\"?(\w+)", statement, re.IGNORECASE)
        if m and m.group(2).startswith("ops_"):
            self.seen[(m.group(1).split()[0].upper(), m.group(2))] += 1

    def __enter__(self) -> Counter:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self.seen

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)


def test_an_open311_report_writes_each_row_once(client, city):
    b = _building(city)
    fields = {"api_key": city.tokens["citizen"], "service_code": "02002", "address_id": str(b.id),
              "description": f"路灯不亮了（{uuid.uuid4().hex[:8]}）", "phone": "13912340000"}
    with Statements(city.engine) as seen:
        r = client.post("/open311/v2/requests.json", data=fields)
    assert r.status_code == 200, r.text
    code = r.json()[0]["service_request_id"]
    # registered and dispatched at once (the category is given), yet the incident row is written once
    assert seen == Counter({("INSERT", "ops_incidents"): 1, ("INSERT", "ops_reporters"): 1,
                            ("INSERT", "ops_timeline"): 1, ("INSERT", "ops_tasks"): 1}), seen
    with Session(city.engine) as s:
        inc = s.scalars(select(Incident).where(Incident.code == code)).one()
        steps = [e.action for e in s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc.id)
                                             .order_by(TimelineEntry.id))]
        tasks = s.scalars(select(Task).where(Task.incident_id == inc.id)).all()
        (reporter,) = s.scalars(select(Reporter).where(Reporter.source_incident_id == inc.id)).all()
    assert code == f"{code[:8]}{inc.id:08d}"
    assert inc.status == "dispatched" and inc.registered_at and inc.dispatched_at and inc.deadline_at
    assert steps == ["receive", "register", "dispatch"]
    assert [t.department_id for t in tasks if t.role == "main"] == [inc.main_department_id]
    assert reporter.incident_id == inc.id and reporter.phone == "13912340000"


def test_a_merged_report_is_written_once_and_joins_the_first(city):
    b = _building(city)
    sessions = make_sessionmaker(city.engine)
    text = f"小区门口垃圾堆放很久没人清理（{uuid.uuid4().hex[:8]}）"
    with sessions() as s:
        first = service.intake(session=s, channel="api", description=text, category_code="01001",
                               building_id=b.id).incident
        s.commit()
    with sessions() as s, Statements(city.engine) as seen:
        r = service.intake(session=s, channel="hotline", description=text, category_code="01001",
                           building_id=b.id, reporter_phone="13912340001")
        s.commit()
    assert r.merged_into is not None and r.merged_into.id == first.id
    assert seen[("INSERT", "ops_incidents")] == 1 and seen[("INSERT", "ops_timeline")] == 1
    assert seen[("UPDATE", "ops_incidents")] == 1  # the first one's repeat count, not the new row
    with Session(city.engine) as s:
        merged = s.get(Incident, r.incident.id)
        again = s.get(Incident, first.id)
        reporters = s.scalars(select(Reporter).where(Reporter.incident_id == first.id)).all()
        absorbed = s.scalars(select(TimelineEntry.action).where(TimelineEntry.incident_id == first.id)).all()
    assert merged.status == "merged" and merged.parent_id == first.id and again.repeat_count == 1
    assert {x.source_incident_id for x in reporters} == {first.id, merged.id}
    assert "absorb" in absorbed


def test_the_classifier_runs_only_when_the_category_is_unknown(city):
    b = _building(city)
    classifier = CountingClassifier("02001", 0.5)
    sessions = make_sessionmaker(city.engine)
    with sessions() as s:
        given = service.intake(session=s, channel="api", description=f"井盖坏了 {uuid.uuid4().hex[:6]}",
                               category_code="02001", building_id=b.id, classifier=classifier).incident
        assert classifier.calls == 0
        assert given.category_confirmed and given.suggested_code is None and given.status == "dispatched"
        guessed = service.intake(session=s, channel="api", description=f"路面塌了 {uuid.uuid4().hex[:6]}",
                                 building_id=_building(city).id, classifier=classifier).incident
        assert classifier.calls == 1
        assert (guessed.suggested_code, guessed.suggested_confidence) == ("02001", 0.5)
        assert guessed.status == "received" and not guessed.category_confirmed  # 0.5 is not certain
        s.commit()


@pytest.mark.parametrize("fields,field", [
    ({"description": "   "}, "description"),
    ({"description": "x" * 4001}, "description"),
    ({"priority": "asap"}, "priority"),
    ({"reporter_phone": "12345"}, "reporter_phone"),
    ({"channel": "fax"}, "channel"),
])
def test_the_command_names_the_field_it_refuses(fields, field):
    with pytest.raises(InvalidInput) as err:
        IntakeCommand(**{"channel": "api", "description": "路灯不亮", **fields})
    assert err.value.extra["field"] == field


def test_the_command_keeps_the_checked_values():
    c = IntakeCommand(channel="hotline", description="  路灯不亮  ", reporter_phone="139 1234 5678")
    assert (c.description, c.reporter_phone) == ("路灯不亮", "13912345678")


def test_racing_reports_get_distinct_ids_and_codes(city):
    sessions = make_sessionmaker(city.engine)
    buildings = [_building(city) for _ in range(4)]
    codes: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def report(b: Building) -> None:
        try:
            start.wait()
            for k in range(3):
                with sessions() as s:
                    inc = service.intake(session=s, channel="api", category_code="03001", building_id=b.id,
                                         description=f"占道设摊 {uuid.uuid4().hex} {k}").incident
                    s.commit()
                    codes.append((inc.id, inc.code))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(b,)) for b in buildings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(codes) == 12 and len({i for i, _ in codes}) == 12 and len({c for _, c in codes}) == 12
    assert all(c.endswith(f"{i:08d}") for i, c in codes)
