"""Durable consumers are idempotent on the event id: a duplicate delivery is handled once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.bus import Context, Event
from citybase.bus.memory import InProcessBus
from citybase.kernel import outbox
from citybase.kernel.consumers import Consumer
from citybase.kernel.models import OutboxEvent, ProcessedEvent
from citybase.storage.db import make_sessionmaker
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_redelivered_event_is_handled_once_and_acked(empty_db):
    upgrade(empty_db.engine)
    bus = InProcessBus()
    runs = []

    def handle(session, d):
        runs.append(d.event.id)
        outbox.queue(session, "citybase.test.followed", {"of": d.event.id})  # the handler's effect

    consumer = Consumer("dup-test", bus, "citybase.test.order", make_sessionmaker(empty_db.engine), handle)
    origin = Context(user_id="clerk")
    ev = Event(subject="citybase.test.order", data={"n": 1}, context=origin)
    for _ in range(3):  # a relay that crashed before marking publishes it again, and again
        bus.publish_event(ev)
    assert consumer.run_once(timeout=1) == 3
    assert runs == [ev.id] and consumer.duplicates == 2
    assert _count(empty_db.engine, ProcessedEvent) == 1
    with Session(empty_db.engine) as s:
        [follow] = s.scalars(select(OutboxEvent)).all()
    assert f'"parent_id": "{origin.id}"' in follow.context and '"user_id": "clerk"' in follow.context
    assert consumer.run_once(timeout=0.3) == 0  # every copy was acked: nothing comes back
    assert bus.dead_letters() == []


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_two_workers_racing_on_one_event_commit_its_effect_once(empty_db):
    upgrade(empty_db.engine)
    bus = InProcessBus()
    both_checked = threading.Barrier(2, timeout=20)

    def handle(session, d):
        both_checked.wait()  # each has seen "not processed yet" before either writes
        outbox.queue(session, "citybase.test.followed", {"of": d.event.id})

    consumer = Consumer("race-test", bus, "citybase.test.order", make_sessionmaker(empty_db.engine), handle)
    ev = Event(subject="citybase.test.order", data={"n": 1}, context=Context())
    bus.publish_event(ev)
    bus.publish_event(ev)
    deliveries = consumer.sub.fetch(batch=1, timeout=1) + consumer.sub.fetch(batch=1, timeout=1)
    assert len(deliveries) == 2
    threads = [threading.Thread(target=consumer.process, args=(d,)) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert consumer.duplicates == 1
    assert _count(empty_db.engine, ProcessedEvent) == 1
    assert _count(empty_db.engine, OutboxEvent) == 1  # the loser's work was rolled back
    assert consumer.sub.fetch(timeout=0.3) == []  # both acked


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_failed_handler_leaves_no_record_and_is_retried_after_its_delay(empty_db):
    upgrade(empty_db.engine)
    bus = InProcessBus()
    calls = []

    def handle(session, d):
        calls.append(d.attempt)
        outbox.queue(session, "citybase.test.followed", {})
        if d.attempt == 1:
            raise RuntimeError("department system away")

    consumer = Consumer("retry-test", bus, "citybase.test.order", make_sessionmaker(empty_db.engine), handle,
                        retry_delay=lambda attempt: 0.5)
    bus.publish("citybase.test.order", {"n": 1})
    assert consumer.run_once(timeout=1) == 1
    assert _count(empty_db.engine, ProcessedEvent) == 0 and _count(empty_db.engine, OutboxEvent) == 0
    assert consumer.run_once(timeout=0.1) == 0  # not yet: it waits for its retry delay
    assert consumer.run_once(timeout=3) == 1
    assert calls == [1, 2]
    assert _count(empty_db.engine, ProcessedEvent) == 1 and _count(empty_db.engine, OutboxEvent) == 1


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_events_the_consumer_has_nothing_to_do_with_are_acked_without_a_write(empty_db):
    upgrade(empty_db.engine)
    bus = InProcessBus()
    runs, asked = [], []

    def handle(session, d):
        runs.append(d.event.data["n"])

    def skip(session, event):
        asked.append(session.get_bind() is not None)  # it reads with a session of its own
        return event.data["n"] % 2 == 0

    consumer = Consumer("skip-test", bus, "citybase.test.order", make_sessionmaker(empty_db.engine), handle,
                        skip=skip)
    for n in range(4):
        bus.publish_event(Event(subject="citybase.test.order", data={"n": n}, context=Context(user_id=None)))
    assert consumer.run_once(timeout=1) == 4
    assert runs == [1, 3] and consumer.skipped == 2 and len(asked) == 4
    assert _count(empty_db.engine, ProcessedEvent) == 2  # only the handled ones are recorded
    assert consumer.run_once(timeout=0.3) == 0  # the skipped were acked, not left to come back
    assert bus.dead_letters() == []
