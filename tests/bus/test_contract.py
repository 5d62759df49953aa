"""The bus contract: every implementation (memory://, nats://) must pass every test here."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from citybase.bus import Bus, Context, Delivery, Event, Subscription, connect

from .conftest import NATS_URL, unavailable


def drain(sub: Subscription, n: int, timeout: float = 5.0) -> list[Delivery]:
    """Fetch until ``n`` deliveries arrived (or ``timeout`` passed); a bus may hand them over in parts."""
    out: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += sub.fetch(batch=n - len(out), timeout=min(1.0, max(deadline - time.monotonic(), 0.05)))
    return out


def test_published_event_reaches_a_durable_consumer_intact(bus: Bus, subj: str) -> None:
    ctx = Context(user_id="u-42", parent_id="p-1")
    sent = bus.publish(f"{subj}.geo.area_created", {"code": "310101", "名称": "黄浦区"}, context=ctx)
    sub = bus.subscribe(f"{subj}.geo.>", "geo_indexer")
    [got] = drain(sub, 1)
    assert got.event == sent
    assert (got.event.id, got.event.data, got.event.subject) == (
        sent.id,
        sent.data,
        f"{subj}.geo.area_created",
    )
    assert (got.event.context.id, got.event.context.user_id, got.event.context.parent_id) == (
        ctx.id,
        "u-42",
        "p-1",
    )
    assert got.attempt == 1
    got.ack()


def test_publish_without_context_gets_a_fresh_one(bus: Bus, subj: str) -> None:
    a = bus.publish(f"{subj}.x.a", {})
    b = bus.publish(f"{subj}.x.a", {})
    assert a.context.id and a.context.id != b.context.id and a.id != b.id
    assert a.context.user_id is None and a.context.parent_id is None


def test_child_context_keeps_the_user_and_links_the_parent_across_the_bus(bus: Bus, subj: str) -> None:
    root = Context(user_id="clerk-7")
    bus.publish(f"{subj}.case.opened", {"case": 1}, context=root)
    sub = bus.subscribe(f"{subj}.case.*", "case_router")
    [opened] = drain(sub, 1)
    follow_up = bus.publish(f"{subj}.case.routed", {"case": 1}, context=opened.event.context.child())
    opened.ack()
    [routed] = drain(sub, 1)
    assert routed.event.id == follow_up.id
    assert routed.event.context.user_id == "clerk-7"
    assert routed.event.context.parent_id == root.id
    assert routed.event.context.id != root.id


def test_events_arrive_in_publish_order_and_batch_limits_each_fetch(bus: Bus, subj: str) -> None:
    sent = [bus.publish(f"{subj}.seq.n", {"i": i}) for i in range(5)]
    sub = bus.subscribe(f"{subj}.seq.n", "ordered")
    first = sub.fetch(batch=2, timeout=2.0)
    assert 1 <= len(first) <= 2
    rest = drain(sub, 5 - len(first))
    assert [d.event.id for d in first + rest] == [e.id for e in sent]


def test_wildcards_deliver_only_matching_subjects(bus: Bus, subj: str) -> None:
    one = bus.subscribe(f"{subj}.geo.*", "one_token")
    rest = bus.subscribe(f"{subj}.geo.>", "all_below")
    exact = bus.subscribe(f"{subj}.geo.area", "exact")
    for s in ("geo", "geo.area", "geo.area.moved", "reg.area", "geox.area"):
        bus.publish(f"{subj}.{s}", {"s": s})
    bus.publish(f"{subj}.geo.road", {"s": "geo.road"})

    def seen(sub: Subscription, expected: int) -> list[str]:
        got = drain(sub, expected, timeout=3.0)
        got += sub.fetch(timeout=0.3)  # nothing else may come
        for d in got:
            d.ack()
        return sorted(d.event.data["s"] for d in got)

    assert seen(one, 2) == ["geo.area", "geo.road"]
    assert seen(rest, 3) == ["geo.area", "geo.area.moved", "geo.road"]
    assert seen(exact, 1) == ["geo.area"]


def test_unacked_delivery_comes_back_after_ack_wait_with_attempt_incremented(bus: Bus, subj: str) -> None:
    sent = bus.publish(f"{subj}.work.todo", {"n": 1})
    sub = bus.subscribe(f"{subj}.work.todo", "slow_worker", ack_wait=0.5)
    [first] = drain(sub, 1)
    assert first.attempt == 1
    assert sub.fetch(timeout=0.2) == []  # not before ack_wait
    time.sleep(0.4)
    [again] = drain(sub, 1, timeout=3.0)
    assert (again.event.id, again.attempt) == (sent.id, 2)
    again.ack()
    time.sleep(0.7)
    assert sub.fetch(timeout=0.3) == []  # acked: gone for good


def test_deliveries_acked_together_are_gone_for_good_and_the_rest_comes_back(bus: Bus, subj: str) -> None:
    sent = [bus.publish(f"{subj}.work.many", {"n": i}) for i in range(40)]
    sub = bus.subscribe(f"{subj}.work.many", "batch_worker", ack_wait=0.5)
    got = drain(sub, 40)
    sub.ack_all(got[:30])
    time.sleep(0.7)
    again = drain(sub, 10, timeout=3.0)
    assert sorted(d.event.id for d in again) == sorted(e.id for e in sent[30:])
    sub.ack_all(again)
    time.sleep(0.7)
    assert sub.fetch(timeout=0.3) == []


def test_nak_redelivers_promptly(bus: Bus, subj: str) -> None:
    sent = bus.publish(f"{subj}.work.flaky", {"n": 1})
    sub = bus.subscribe(f"{subj}.work.flaky", "flaky_worker", ack_wait=30.0)
    [first] = drain(sub, 1)
    started = time.monotonic()
    first.nak()
    [again] = drain(sub, 1, timeout=3.0)
    assert time.monotonic() - started < 2.0
    assert (again.event.id, again.attempt) == (sent.id, 2)
    again.ack()


def test_resubscribed_durable_resumes_after_acked_and_sees_unacked_again(bus: Bus, subj: str) -> None:
    sent = [bus.publish(f"{subj}.reg.person", {"i": i}) for i in range(3)]
    sub = bus.subscribe(f"{subj}.reg.person", "registry_sync", ack_wait=30.0)
    got = drain(sub, 3)
    assert [d.event.id for d in got] == [e.id for e in sent]
    got[0].ack()
    sub.close()  # crash-free stop with two deliveries unsettled
    later = bus.publish(f"{subj}.reg.person", {"i": 3})

    resumed = bus.subscribe(f"{subj}.reg.person", "registry_sync", ack_wait=30.0)
    again = drain(resumed, 3, timeout=3.0)
    assert sorted((d.event.id, d.attempt) for d in again) == sorted(
        [(sent[1].id, 2), (sent[2].id, 2), (later.id, 1)]
    )
    for d in again:
        d.ack()
    assert resumed.fetch(timeout=0.3) == []


def test_same_durable_cannot_change_its_subjects(bus: Bus, subj: str) -> None:
    bus.subscribe(f"{subj}.geo.>", "pinned").close()
    with pytest.raises(ValueError, match="pinned"):
        bus.subscribe(f"{subj}.reg.>", "pinned")


def test_two_durables_each_get_every_message(bus: Bus, subj: str) -> None:
    sent = [bus.publish(f"{subj}.geo.changed", {"i": i}) for i in range(4)]
    a = bus.subscribe(f"{subj}.geo.changed", "search_index")
    b = bus.subscribe(f"{subj}.geo.changed", "map_tiles")
    got_a = drain(a, 4)
    for d in got_a:
        d.ack()  # acking on one consumer does not consume it for the other
    got_b = drain(b, 4)
    assert [d.event.id for d in got_a] == [e.id for e in sent]
    assert [d.event.id for d in got_b] == [e.id for e in sent]


def test_malformed_messages_are_dead_lettered_and_the_consumer_keeps_going(bus: Bus, subj: str) -> None:
    not_json = b"\xff this is not json"
    lacks_fields = b'{"subject": "x", "data": {}}'
    bus.publish_raw(f"{subj}.foreign.a", not_json)
    bus.publish_raw(f"{subj}.foreign.b", lacks_fields)
    good = bus.publish(f"{subj}.foreign.c", {"ok": True})
    sub = bus.subscribe(f"{subj}.foreign.>", "importer")
    [d] = drain(sub, 1)
    assert d.event.id == good.id
    d.ack()

    letters = bus.dead_letters()
    assert [(x.subject, x.raw, x.consumer) for x in letters] == [
        (f"{subj}.foreign.a", not_json, "importer"),
        (f"{subj}.foreign.b", lacks_fields, "importer"),
    ]
    assert "malformed" in letters[0].reason and "not JSON" in letters[0].reason
    assert "lacks" in letters[1].reason and "id" in letters[1].reason and "context" in letters[1].reason
    assert all(x.time for x in letters)

    later = bus.publish(f"{subj}.foreign.d", {"ok": 2})  # no crash loop: still consuming
    [d2] = drain(sub, 1)
    assert d2.event.id == later.id
    assert len(bus.dead_letters()) == 2


def test_rejected_event_is_dead_lettered_with_its_reason_and_never_redelivered(bus: Bus, subj: str) -> None:
    sent = bus.publish(f"{subj}.case.filed", {"case": "A-1"})
    sub = bus.subscribe(f"{subj}.case.filed", "case_checker", ack_wait=0.5)
    [d] = drain(sub, 1)
    d.reject("unknown district code 999")
    [letter] = bus.dead_letters()
    assert letter.reason == "unknown district code 999"
    assert letter.consumer == "case_checker"
    assert letter.subject == f"{subj}.case.filed"
    assert Event.decode(letter.raw) == sent
    time.sleep(0.7)
    assert sub.fetch(timeout=0.3) == []


def test_never_acked_event_is_dead_lettered_after_max_deliver(
    make_bus: Callable[..., Bus], subj: str
) -> None:
    bus = make_bus(max_deliver=2)
    sent = bus.publish(f"{subj}.poison.pill", {"n": 1})
    sub = bus.subscribe(f"{subj}.poison.pill", "poisoned", ack_wait=0.3)
    attempts = []
    for _ in range(2):
        [d] = drain(sub, 1, timeout=3.0)
        attempts.append(d.attempt)
        time.sleep(0.35)
    assert attempts == [1, 2]
    assert sub.fetch(timeout=0.5) == []
    [letter] = bus.dead_letters()
    assert letter.reason == "not acknowledged after 2 deliveries"
    assert (letter.subject, letter.consumer, Event.decode(letter.raw).id) == (
        sent.subject,
        "poisoned",
        sent.id,
    )

    after = bus.publish(f"{subj}.poison.pill", {"n": 2})
    [d] = drain(sub, 1)
    assert d.event.id == after.id


def test_fetch_with_nothing_pending_returns_empty_within_the_timeout(bus: Bus, subj: str) -> None:
    sub = bus.subscribe(f"{subj}.quiet.>", "idle")
    started = time.monotonic()
    assert sub.fetch(batch=10, timeout=0.5) == []
    assert 0.4 <= time.monotonic() - started < 1.5


def test_fetch_waits_for_an_event_published_meanwhile(bus: Bus, subj: str) -> None:
    sub = bus.subscribe(f"{subj}.late.>", "patient")
    timer = threading.Timer(0.3, lambda: bus.publish(f"{subj}.late.news", {"n": 1}))
    timer.start()
    try:
        started = time.monotonic()
        got = sub.fetch(timeout=3.0)
        assert [d.event.data for d in got] == [{"n": 1}]
        assert time.monotonic() - started < 2.5
    finally:
        timer.join()


def test_connect_rejects_an_unknown_url_scheme() -> None:
    with pytest.raises(ValueError, match="bogus"):
        connect("bogus://")


def test_connect_memory_gives_an_in_process_bus() -> None:
    from citybase.bus.memory import InProcessBus

    with connect("memory://", max_deliver=3) as bus:
        assert isinstance(bus, InProcessBus) and bus.max_deliver == 3


@pytest.mark.nats
def test_unreachable_nats_raises_connection_error_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach NATS at nats://127.0.0.1:1"):
        connect("nats://127.0.0.1:1")
    assert time.monotonic() - started < 5.0


@pytest.mark.nats
def test_nats_refuses_a_subject_outside_its_stream(nats_problem: str | None) -> None:
    if nats_problem:
        unavailable(nats_problem)
    from citybase.bus.nats import NatsBus

    prefix = f"t{uuid.uuid4().hex[:12]}"
    bus = NatsBus(NATS_URL, stream=prefix.upper(), subjects_prefix=prefix)
    try:
        with pytest.raises(ValueError, match="outside"):
            bus.publish(f"elsewhere.{prefix}", {})
    finally:
        bus.delete_streams()
        bus.close()


def test_nak_with_a_delay_holds_the_redelivery_back(bus: Bus, subj: str) -> None:
    sent = bus.publish(f"{subj}.work.later", {"n": 1})
    sub = bus.subscribe(f"{subj}.work.later", "patient_worker", ack_wait=30.0)
    [first] = drain(sub, 1)
    first.nak(delay=1.5)
    assert sub.fetch(timeout=0.3) == []  # not at once
    [again] = drain(sub, 1, timeout=5.0)
    assert (again.event.id, again.attempt) == (sent.id, 2)
    again.ack()


def test_publish_event_keeps_the_id_time_and_context_of_an_event_made_elsewhere(bus: Bus, subj: str) -> None:
    made = Event(subject=f"{subj}.outbox.row", data={"k": "值"}, context=Context(user_id="u-1", parent_id="p"),
                 time="2026-01-02T03:04:05+00:00")
    bus.publish_event(made)
    sub = bus.subscribe(f"{subj}.outbox.>", "relayed")
    [got] = drain(sub, 1)
    assert got.event == made
    got.ack()


def test_publish_events_stores_a_batch_in_order(bus: Bus, subj: str) -> None:
    batch = [Event(subject=f"{subj}.outbox.batch", data={"i": i}, context=Context()) for i in range(50)]
    bus.publish_events(batch)
    sub = bus.subscribe(f"{subj}.outbox.batch", "batch_reader")
    got = drain(sub, 50)
    assert [d.event for d in got] == batch
