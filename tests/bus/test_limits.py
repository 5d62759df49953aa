"""The in-process bus keeps what a consumer still owes and, within limits, what nobody consumes: no more."""

from __future__ import annotations

import time

from citybase.bus import connect
from citybase.bus.memory import InProcessBus


def test_the_store_stays_bounded_under_a_long_stream_of_events():
    bus = InProcessBus(max_msgs=500)
    sub = bus.subscribe("citybase.ops.>", "webhooks")
    for i in range(20_000):
        bus.publish("citybase.ops.incident.receive", {"i": i})  # consumed and acked
        bus.publish("citybase.registry.person_registered", {"i": i})  # nobody listens
        if i % 100 == 99:
            got = sub.fetch(batch=200, timeout=1)
            assert len(got) == 100
            for d in got:
                d.ack()
        assert bus.stored() <= 500 + 100
    assert bus.stored() == 500  # only the newest of what nobody consumes


def test_what_nobody_consumes_is_dropped_after_max_age_but_a_later_subscriber_sees_what_is_kept():
    bus = connect("memory://?max_age=0.3&max_msgs=100")
    bus.publish("citybase.a.old", {"n": 0})
    time.sleep(0.4)
    bus.publish("citybase.a.new", {"n": 1})
    assert bus.stored() <= 1  # every owed message settled; at most the unconsumed one is left
    sub = bus.subscribe("citybase.a.>", "late")
    assert [d.event.data["n"] for d in sub.fetch(batch=10, timeout=1)] == [1]


def test_what_a_durable_consumer_still_owes_is_never_dropped_by_the_limits():
    bus = InProcessBus(max_msgs=10, max_age=0.2)
    sub = bus.subscribe("citybase.work.>", "slow")
    for i in range(50):
        bus.publish("citybase.work.item", {"i": i})
    time.sleep(0.3)
    bus.publish("citybase.other.x", {})  # a publish applies the limits
    got = []
    while batch := sub.fetch(batch=20, timeout=0.2):
        got += batch
        for d in batch:
            d.ack()
    assert [d.event.data["i"] for d in got] == list(range(50))
    assert bus.stored() <= 1  # every owed message settled; at most the unconsumed one is left


def test_a_message_two_consumers_follow_is_kept_until_both_settled_it():
    bus = InProcessBus()
    a = bus.subscribe("citybase.geo.>", "a")
    b = bus.subscribe("citybase.geo.*", "b")
    bus.publish("citybase.geo.changed", {})
    [da] = a.fetch(timeout=1)
    da.ack()
    assert bus.stored() <= 1  # every owed message settled; at most the unconsumed one is left
    [db] = b.fetch(timeout=1)
    db.reject("not for me")
    assert bus.stored() == 0 and len(bus.dead_letters()) == 1


def test_what_a_consumer_has_not_settled_is_counted_for_producers_that_hold_back():
    bus = InProcessBus(max_msgs=5)
    assert bus.waiting("ingest") == 0
    for i in range(3):
        bus.publish("citybase.iot.ingest", {"i": i})  # kept for a later subscriber
    sub = bus.subscribe("citybase.iot.ingest", "ingest")
    for i in range(4):
        bus.publish("citybase.iot.ingest", {"i": i})
        bus.publish("citybase.ops.incident.receive", {"i": i})  # not its subject
    assert bus.waiting("ingest") == 7
    got = sub.fetch(batch=5, timeout=1)
    assert bus.waiting("ingest") == 7  # fetched is not settled
    for d in got[:4]:
        d.ack()
    got[4].reject("bad")
    got[4].ack()  # settling twice counts once
    assert bus.waiting("ingest") == 2
    for d in sub.fetch(batch=5, timeout=1):
        d.ack()
    assert bus.waiting("ingest") == 0
