"""The incident loop's side of the IoT alarms (docs/iot.md "Events"), through the ``ops-alarms`` consumer on both
engines: a raised alarm opens one incident that keeps its alarm_id, however often it is delivered; a cleared one
is noted on that incident's timeline and changes nothing else; the rest is acked unread."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citybase.bus.memory import InProcessBus
from citybase.geo.models import Building
from citybase.iot.types import DEVICE_TYPES
from citybase.kernel.models import OutboxEvent
from citybase.ops import workers
from citybase.ops.catalogue.defaults import ALARM_CATEGORIES, CATEGORIES
from citybase.ops.domain import DOMAIN
from citybase.ops.intake import service
from citybase.ops.intake.alarms import IOT_ACTOR
from citybase.ops.intake.events import AlarmCleared, AlarmRaised
from citybase.ops.workflow.models import Incident, TimelineEntry
from citybase.storage.db import make_sessionmaker

RAISED, CLEARED = "citybase.iot.alarm.raised", "citybase.iot.alarm.cleared"


@pytest.fixture
def bus():
    return InProcessBus(max_deliver=3)


@pytest.fixture
def consumer(city, bus):
    return workers.alarm_consumer(bus, make_sessionmaker(city.engine))


def _building(city, k: int) -> Building:
    with Session(city.engine) as s:  # apart from the buildings test_workers' alarms are at
        return s.query(Building).order_by(Building.id.desc()).offset(k).first()


def _raised(b: Building, alarm_id: str | None, **extra) -> dict:
    data = {"alarm_id": alarm_id, "alarm_type": "manhole_cover_open", "incident": True,
            "device_id": f"manhole-310104-{uuid.uuid4().hex[:6]}", "device_type": "manhole", "department": "建管委",
            "severity": "critical", "rule": "tilted", "attribute": "tiltAngle", "value": 32.5, "lon": b.lon,
            "lat": b.lat, "raised_at": "2026-12-01T08:00:00+00:00",
            "description": f"井盖倾斜 {uuid.uuid4().hex} {uuid.uuid4().hex}", **extra}
    AlarmRaised.model_validate(data)  # what the test sends is what the schema declares
    return data


def _cleared(alarm_id: str, device: str, **extra) -> dict:
    data = {"alarm_id": alarm_id, "alarm_type": "manhole_cover_open", "device_id": device, "value": 2.0,
            "cleared_at": "2026-12-01T09:00:00+00:00", "how": "auto", "by": None, **extra}
    AlarmCleared.model_validate(data)
    return data


def _of_alarm(city, alarm_id: str) -> list[Incident]:
    with Session(city.engine) as s:
        return list(s.scalars(select(Incident).where(Incident.source_ref == alarm_id)))


def _entries(city, incident_id: int, action: str) -> list[TimelineEntry]:
    with Session(city.engine) as s:
        return list(s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id,
                                                          TimelineEntry.action == action)))


def test_every_alarm_type_that_opens_incidents_has_a_category():
    codes = {c.code for c in CATEGORIES}
    opening = {r.alarm_type for t in DEVICE_TYPES.values() for r in t.rules if r.incident}
    assert opening <= set(ALARM_CATEGORIES)
    assert set(ALARM_CATEGORIES.values()) <= codes
    names = {c.code: c.name for c in CATEGORIES}
    assert {a: names[ALARM_CATEGORIES[a]] for a in ("container_full", "water_meter_silent", "hydrant_pressure_low",
                                                     "traffic_congestion")} == {
        "container_full": "暴露垃圾", "water_meter_silent": "养老服务诉求", "hydrant_pressure_low": "消防栓损坏",
        "traffic_congestion": "交通拥堵"}


def test_a_raised_alarm_opens_one_incident_that_keeps_its_alarm_id(city, bus, consumer):
    b, alarm_id = _building(city, 30), f"alm-{uuid.uuid4().hex}"
    data = _raised(b, alarm_id)
    bus.publish(RAISED, data)
    bus.publish(RAISED, data)  # the same alarm again, under a new event id (a producer that published twice)
    assert consumer.run_once(timeout=1) == 2
    assert bus.dead_letters() == []
    [inc] = _of_alarm(city, alarm_id)
    assert inc.channel == "iot" and inc.category_code == "02001" and inc.priority == "urgent"
    assert inc.status == "dispatched"
    with Session(city.engine) as s:
        found = service.incident_of_alarm(session=s, alarm_id=alarm_id)
        assert found == {"id": inc.id, "code": inc.code, "status": "dispatched", "department": found["department"],
                         "merged_into": None}
        assert found["department"] and "建" in found["department"]  # 建管委 owns manhole covers (routing)
        assert service.incident_of_alarm(session=s, alarm_id="no-such-alarm") is None
        many = service.incidents_of_alarms(session=s, alarm_ids=[alarm_id, "no-such-alarm", ""])
        assert list(many) == [alarm_id] and many[alarm_id]["code"] == inc.code


def test_the_alarm_id_is_unique_even_when_the_check_is_raced(city, bus, consumer):
    """Two workers that both found no incident for the alarm: the second INSERT is refused by the index (and
    the consumer retries it, then finds the first's incident)."""
    b, alarm_id = _building(city, 31), f"alm-{uuid.uuid4().hex}"
    bus.publish(RAISED, _raised(b, alarm_id))
    consumer.run_once(timeout=1)
    with Session(city.engine) as s:
        command = service.IntakeCommand(channel="iot", description=f"重复 {uuid.uuid4().hex}", category_code="02001",
                                        lon=b.lon, lat=b.lat, source_ref=alarm_id)
        with pytest.raises(IntegrityError):
            service.submit(session=s, command=command, actor=IOT_ACTOR)
            s.flush()
        s.rollback()
    assert len(_of_alarm(city, alarm_id)) == 1


def test_a_cleared_alarm_is_noted_on_its_incident_and_the_state_stays(city, bus, consumer):
    b, alarm_id = _building(city, 32), f"alm-{uuid.uuid4().hex}"
    raised = _raised(b, alarm_id)
    bus.publish(RAISED, raised)
    consumer.run_once(timeout=1)
    [before] = _of_alarm(city, alarm_id)
    cleared = _cleared(alarm_id, raised["device_id"])
    bus.publish(CLEARED, cleared)
    bus.publish(CLEARED, cleared)  # delivered twice under two event ids: noted once
    bus.publish(CLEARED, _cleared(f"alm-{uuid.uuid4().hex}", "manhole-x"))  # an alarm that made no incident
    assert consumer.run_once(timeout=1) == 3
    assert bus.dead_letters() == []
    [after] = _of_alarm(city, alarm_id)
    assert after.status == before.status == "dispatched" and after.deadline_at == before.deadline_at
    [entry] = _entries(city, after.id, "alarm_cleared")
    assert entry.actor == "iot" and entry.from_status == entry.to_status == "dispatched"
    assert entry.reason == f"物联感知告警已解除：{raised['device_id']} 读数 2.0（自动）"
    assert json.loads(entry.data)["alarm_id"] == alarm_id
    with Session(city.engine) as s:  # a step like every other: its event in the outbox, of its declared schema
        [row] = [r for r in s.scalars(select(OutboxEvent).where(
            OutboxEvent.subject == "citybase.ops.incident.alarm_cleared"))
            if json.loads(r.data)["incident_id"] == after.id]
    event = DOMAIN.events[row.subject].model_validate(json.loads(row.data))
    assert event.status == "dispatched" and event.model_extra["alarm_id"] == alarm_id


def test_a_person_clearing_an_alarm_is_named_and_a_merged_alarm_is_noted_where_the_case_is_worked(
        city, bus, consumer):
    b = _building(city, 33)
    first, second = f"alm-{uuid.uuid4().hex}", f"alm-{uuid.uuid4().hex}"
    same = f"井盖被掀开 {uuid.uuid4().hex}"
    bus.publish(RAISED, _raised(b, first, description=same))
    bus.publish(RAISED, _raised(b, second, description=same))  # the same cover, a second device: merged
    consumer.run_once(timeout=1)
    [root], [merged] = _of_alarm(city, first), _of_alarm(city, second)
    assert merged.status == "merged" and merged.parent_id == root.id
    with Session(city.engine) as s:
        assert service.incident_of_alarm(session=s, alarm_id=second)["merged_into"] == {"id": root.id,
                                                                                      "code": root.code}
    bus.publish(CLEARED, _cleared(second, "manhole-y", how="manual", by="张三", value=None))
    consumer.run_once(timeout=1)
    [own], [theirs] = _entries(city, merged.id, "alarm_cleared"), _entries(city, root.id, "alarm_cleared")
    assert own.reason == theirs.reason == "物联感知告警已解除：manhole-y 读数 —（人工，张三）"
    assert theirs.to_status == root.status and own.to_status == "merged"


def test_alarms_that_open_no_incident_and_other_subjects_are_acked_unread(city, bus, consumer):
    b = _building(city, 34)
    offline = f"alm-{uuid.uuid4().hex}"
    bus.publish(RAISED, _raised(b, offline, alarm_type="device_offline", incident=False))
    bus.publish("citybase.iot.alarm.acknowledged", {"alarm_id": offline, "by": "张三", "at": "2026-12-01T08:05:00Z"})
    bus.publish("citybase.iot.alarm.manhole", _raised(b, f"alm-{uuid.uuid4().hex}"))  # not a subject of the loop
    assert consumer.run_once(timeout=1) == 3
    assert consumer.skipped == 3 and bus.dead_letters() == []
    assert _of_alarm(city, offline) == []


def test_alarms_wrong_in_themselves_are_kept_aside_with_the_reason(city, bus, consumer):
    b = _building(city, 35)
    bus.publish(RAISED, _raised(b, f"alm-{uuid.uuid4().hex}", incident="yes"))
    bus.publish(RAISED, {**_raised(b, None), "alarm_id": 42})
    bus.publish(RAISED, _raised(b, "x" * 129))
    bus.publish(CLEARED, {"device_id": "manhole-z"})
    bus.publish(RAISED, _raised(b, f"alm-{uuid.uuid4().hex}", alarm_type="alien_landing"))
    consumer.run_once(timeout=1)
    reasons = [d.reason for d in bus.dead_letters()]
    assert len(reasons) == 5
    assert "incident must be true or false, not 'yes'" in reasons[0]
    assert "alarm_id must be a non-empty string, not 42" in reasons[1]
    assert "longer than 128 characters" in reasons[2]
    assert "alarm_id must be a non-empty string, not None" in reasons[3]
    assert "unknown alarm_type 'alien_landing'" in reasons[4]


def test_an_older_producer_without_alarm_ids_still_opens_incidents(city, bus, consumer):
    b = _building(city, 36)
    data = _raised(b, None)
    del data["alarm_id"], data["incident"], data["severity"]
    bus.publish(RAISED, data)
    consumer.run_once(timeout=1)
    with Session(city.engine) as s:
        inc = s.scalar(select(Incident).where(Incident.description == data["description"]))
    assert inc is not None and inc.source_ref is None and inc.priority == "urgent"
