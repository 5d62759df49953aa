"""The bus away: work is stored and answered without error, and every event arrives once when it is back."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from citybase.api.app import create_app
from citybase.bus.nats import NatsBus
from citybase.kernel.outbox import Relay

from .conftest import collect, fresh_building, outbox_ids


@pytest.mark.nats
def test_reports_made_while_nats_is_stopped_are_answered_and_their_events_arrive_once(city, private_nats):
    bus = NatsBus(private_nats.url)
    relay = Relay(city.engine, bus, poll=0.2, backoff=0.1, backoff_max=1.0)
    try:
        sub = bus.subscribe("citybase.ops.>", "outage-watch")
        relay.drain()  # what earlier tests left, so the relay thread below has only the outage's work
        relay.start()
        client = TestClient(create_app(engine=city.engine, bus=bus))

        private_nats.stop()
        incidents = []
        for text in ("井盖缺失", "路灯不亮", "垃圾满溢"):
            r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"),
                            json={"description": text, "category_code": "01007", "building_id": fresh_building(city).id})
            assert r.status_code == 201, r.text  # stored and answered, the bus being away changes nothing
            incidents.append(r.json()["incident"]["id"])
        waiting = {event_id for i in incidents for event_id, published in outbox_ids(city, i) if not published}
        assert len(waiting) == 9
        deadline = time.monotonic() + 60
        while relay.failures < 2 and time.monotonic() < deadline:  # the relay meets the outage, more than once
            time.sleep(0.2)
        assert relay.failures >= 2, "the relay never noticed the outage"
        private_nats.start()

        got = collect(sub, lambda e: e.data.get("incident_id") in incidents, 9, wait=120)
    finally:
        relay.stop(timeout=30)
        bus.close()
    assert Counter(e.id for e in got) == Counter({event_id: 1 for event_id in waiting})
    for i in incidents:
        assert [e.subject.rsplit(".", 1)[1] for e in got if e.data["incident_id"] == i] == [
            "receive", "register", "dispatch"]
