"""The transactional outbox: events are rows of the change's own transaction, relayed to the bus after it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.bus import Context
from citybase.bus.memory import InProcessBus
from citybase.kernel import outbox
from citybase.kernel.models import OutboxEvent
from citybase.kernel.outbox import Relay
from citybase.ops.intake import service
from citybase.storage.db import make_sessionmaker
from citybase.storage.migrate import upgrade

from .conftest import collect, fresh_building, outbox_ids


def _report(session: Session, city, text: str) -> int:
    b = fresh_building(city)
    r = service.intake(session=session, channel="api", actor=service.Actor("outbox-test"),
                       description=f"{text} {uuid.uuid4().hex[:6]}", category_code="01007", building_id=b.id)
    return r.incident.id


def test_an_event_is_never_published_for_a_rolled_back_transaction(city):
    bus = InProcessBus()
    sub = bus.subscribe("citybase.ops.>", f"rb-{uuid.uuid4().hex}")
    sessions = make_sessionmaker(city.engine)
    with sessions() as s:  # first, so the spatial caches are not built in the session that rolls back
        kept = _report(s, city, "提交的上报")
        s.commit()
    with sessions() as s:
        last = s.scalar(select(func.max(OutboxEvent.seq)))
        _report(s, city, "回滚的上报")
        s.flush()
        rolled_back = set(s.scalars(select(OutboxEvent.event_id).where(OutboxEvent.seq > last)))
        s.rollback()
    assert len(rolled_back) == 3  # receive, register, dispatch were queued...
    Relay(city.engine, bus).drain()
    got = collect(sub, lambda e: True, len(outbox_ids(city, kept)), wait=10)
    ids = {e.id for e in got}
    assert {i for i, _ in outbox_ids(city, kept)} <= ids  # ...the committed work is on the bus
    assert not rolled_back & ids  # ...the rolled-back work never is


def test_events_carry_the_requests_id_and_caller_and_arrive_in_order(client, city):
    sub = client.app.state.bus.subscribe("citybase.ops.incident.*", durable=f"ctx-{uuid.uuid4().hex}")
    b = fresh_building(city)
    rid = f"req-{uuid.uuid4().hex[:8]}"
    r = client.post("/api/v1/ops/incidents", headers={**city.auth("dispatcher"), "X-Request-Id": rid},
                    json={"description": "公厕门坏了", "category_code": "01007", "building_id": b.id})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    me = client.get("/api/v1/me", headers=city.auth("dispatcher")).json()
    got = collect(sub, lambda e: e.data.get("incident_id") == inc["id"], 3, wait=10)
    assert [e.subject.rsplit(".", 1)[1] for e in got] == ["receive", "register", "dispatch"]
    assert {e.context.id for e in got} == {rid}
    assert {e.context.user_id for e in got} == {str(me["id"])}


def test_a_commit_wakes_the_relay_at_once(city):
    bus = InProcessBus()
    sub = bus.subscribe("citybase.ops.>", f"wake-{uuid.uuid4().hex}")
    Relay(city.engine, bus).drain()  # publish what earlier tests left, so only this commit waits
    relay = Relay(city.engine, bus, poll=3600)  # it would not poll again within the test
    relay.start()
    try:
        sessions = make_sessionmaker(city.engine)
        with sessions() as s:
            inc = _report(s, city, "唤醒")
            s.commit()
        got = collect(sub, lambda e: e.data.get("incident_id") == inc, 3, wait=30)
        assert len(got) == 3
        assert relay.published >= 3 and relay.lag_p99() is not None
    finally:
        relay.stop()


def test_depth_counts_what_waits_and_prune_drops_published_rows(city):
    sessions = make_sessionmaker(city.engine)
    relay = Relay(city.engine, InProcessBus(), retention=timedelta(0))
    relay.drain()
    with sessions() as s:
        outbox.bind_context(s, Context(user_id="u1"))
        for i in range(4):
            outbox.queue(s, "citybase.test.outbox.depth", {"i": i})
        s.commit()
    assert outbox.depth(city.engine) == 4
    assert outbox.oldest_waiting_age(city.engine) >= 0
    assert relay.drain() == 4
    assert outbox.depth(city.engine) == 0 and outbox.oldest_waiting_age(city.engine) is None
    relay.prune()
    with Session(city.engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0


@pytest.mark.parametrize("empty_db", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_two_relays_on_postgresql_publish_each_event_once(empty_db):
    upgrade(empty_db.engine)
    bus = InProcessBus(max_msgs=100_000)
    sub = bus.subscribe("citybase.test.>", "watch")
    sessions = make_sessionmaker(empty_db.engine)
    with sessions() as s:
        for i in range(2000):
            outbox.queue(s, "citybase.test.race", {"i": i})
        s.commit()
    relays = [Relay(empty_db.engine, bus, batch=50) for _ in range(2)]
    threads = [threading.Thread(target=r.drain) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = collect(sub, lambda e: True, 2000, wait=10)
    counts = Counter(e.data["i"] for e in got)
    assert len(counts) == 2000 and set(counts.values()) == {1}
    assert sum(r.published for r in relays) == 2000
