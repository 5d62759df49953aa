"""Two deployments on one NATS server: each has its own streams and never sees the other's events."""

from __future__ import annotations

import uuid

import pytest

from citybase.bus.nats import NatsBus, parse_url

from .conftest import NATS_URL, unavailable


def test_the_deployment_comes_from_the_url_and_defaults_to_none():
    assert parse_url("nats://h:4222") == ("nats://h:4222", None)
    assert parse_url("nats://u:p@h:4222?deployment=pudong-2") == ("nats://u:p@h:4222", "pudong-2")
    with pytest.raises(ValueError, match="letters, digits"):
        parse_url("nats://h:4222?deployment=a.b")
    with pytest.raises(ValueError, match="knows deployment"):
        parse_url("nats://h:4222?stream=X")


@pytest.mark.nats
def test_two_deployments_share_a_server_but_not_their_events(nats_problem):
    if nats_problem:
        unavailable(nats_problem)
    names = [f"d{uuid.uuid4().hex[:8]}" for _ in range(2)]
    buses = [NatsBus(f"{NATS_URL}?deployment={n}", max_deliver=2) for n in names]
    try:
        assert [b.stream for b in buses] == [f"CITYBASE_{n.upper()}" for n in names]
        assert [b.dlq_stream for b in buses] == [f"CITYBASE_{n.upper()}_DLQ" for n in names]
        sent = [b.publish("citybase.ops.incident.receive", {"deployment": n}) for b, n in zip(buses, names, strict=True)]
        for b, n, ev in zip(buses, names, sent, strict=True):
            sub = b.subscribe("citybase.ops.>", "ops-webhooks")  # the same durable name in both
            got = sub.fetch(batch=10, timeout=2)
            assert [(d.event.id, d.event.subject, d.event.data) for d in got] == [
                (ev.id, "citybase.ops.incident.receive", {"deployment": n})]
            got[0].reject("kept aside")
            [letter] = b.dead_letters()
            assert (letter.subject, letter.consumer) == ("citybase.ops.incident.receive", "ops-webhooks")
    finally:
        for b in buses:
            b.delete_streams()
            b.close()
