"""The twin's observation path (what the IoT ingest writes through): the latest reading becomes the state, a
reading older than the stored one does not turn it back, the attribute's createdAt stays, every reading is
history; on both engines."""

from __future__ import annotations

import uuid
from datetime import datetime

from citybase.storage.db import make_sessionmaker
from citybase.twin import service
from citybase.twin.city import city_call


def _entity(sessions, eid):
    with sessions() as s:
        return service.get_entity(session=s, call=city_call(), entity_id=eid)


def test_observations_keep_the_newest_state_and_every_reading(city):
    sessions = make_sessionmaker(city.engine)
    eid = f"urn:ngsi-ld:FloodMonitoring:obs-{uuid.uuid4().hex[:8]}"
    with sessions() as s:
        service.batch_upsert(session=s, call=city_call(), update_only=False, items=[
            {"id": eid, "type": "FloodMonitoring", "name": {"type": "Property", "value": "测试"}}])
        s.commit()

    def observe(*points):
        with sessions() as s:
            n = service.record_observations(session=s, call=city_call(), observations=[
                service.Observation(eid, {"currentLevel": [(datetime.fromisoformat(t), v, "MTR") for t, v in points]})])
            s.commit()
        return n

    assert observe(("2026-11-30T08:01:00Z", 0.2), ("2026-11-30T08:00:00Z", 0.1)) == 1
    first = _entity(sessions, eid)
    level = next(v for k, v in first["attrs"].items() if k.endswith("currentLevel"))[0]
    assert level["value"] == 0.2 and level["unitCode"] == "MTR"
    assert observe(("2026-11-30T07:59:00Z", 0.05)) == 1  # late: history only
    after = next(v for k, v in _entity(sessions, eid)["attrs"].items() if k.endswith("currentLevel"))[0]
    assert after["value"] == 0.2
    observe(("2026-11-30T08:02:00Z", 0.3))
    newest = next(v for k, v in _entity(sessions, eid)["attrs"].items() if k.endswith("currentLevel"))[0]
    assert newest["value"] == 0.3 and newest["createdAt"] == level["createdAt"]
    assert any(k.endswith("name") for k in _entity(sessions, eid)["attrs"])  # the other attributes stay
    with sessions() as s:
        _, hist = service.temporal_entity(session=s, call=city_call(), entity_id=eid, attrs=None,
                                          tq=service.TimeQuery())
    levels = sorted((h.observed_at.isoformat()[:16], h.number) for h in hist if h.attr.endswith("currentLevel"))
    assert [v for _, v in levels] == [0.05, 0.1, 0.2, 0.3]
    with sessions() as s:  # an entity that does not exist is skipped, not created
        assert service.record_observations(session=s, call=city_call(), observations=[service.Observation(
            "urn:ngsi-ld:FloodMonitoring:nobody", {"currentLevel": [(datetime.fromisoformat("2026-11-30T08:00:00Z"), 1.0, None)]})]) == 0
