"""Subscriptions to context source registrations notified (§5.11.7) on both engines: a registration created,
updated or deleted reaches a real HTTP receiver as a ContextSourceNotification (newlyMatching, updated,
noLongerMatching), the subscription's delivery record moves, a failing receiver is retried. The consumers are
driven by hand (relay drained, then each consumer's batch), never by waiting."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from tests.twin.conftest import CTX, EX
from tests.twin.test_subscriptions import Receiver, _Receiver

MINE = ("twin-csource-subscriptions", "twin-csource-notify")


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.got, server.statuses = [], []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield Receiver(f"http://127.0.0.1:{server.server_port}/notify", server)
    server.shutdown()
    server.server_close()


_consumers: dict[int, list[Any]] = {}


def _run(app: Any) -> None:
    from citybase.kernel.runtime import DomainConsumer
    from citybase.twin.domain import DOMAIN

    if id(app) not in _consumers:  # no back-off: a retry comes back at the next batch
        specs = [dataclasses.replace(s, retry_delay=lambda attempt: 0.0) for s in DOMAIN.consumers if s.name in MINE]
        assert len(specs) == 2, "the twin's descriptor runs both consumers of the subscriptions to registrations"
        _consumers[id(app)] = [DomainConsumer(s, app.state.runtime) for s in specs]
    for _ in range(50):
        n = app.state.relay.drain()
        for c in _consumers[id(app)]:
            n += c.run_once(timeout=0.05)
        if not n:
            return
    raise AssertionError("the consumers did not settle")


@pytest.fixture
def pump(client):
    _run(client.app)  # what earlier tests left on the bus
    return lambda: _run(client.app)


def register(ngsi, types: list[str], rid: str | None = None, **members: Any) -> str:
    body: dict[str, Any] = {"type": "ContextSourceRegistration", "endpoint": "http://127.0.0.1:9/broker",
                            "information": [{"entities": [{"type": t}]} for t in types], **members}
    if rid:
        body["id"] = rid
    r = ngsi.post("/csourceRegistrations", body)
    assert r.status_code == 201, r.text
    return r.headers["location"].rsplit("/", 1)[-1]


def subscribe(ngsi, uri: str, **members: Any) -> str:
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Building"}],
                            "notification": {"endpoint": {"uri": uri}}, **members}
    r = ngsi.post("/csourceSubscriptions", body)
    assert r.status_code == 201, r.text
    return r.headers["location"].rsplit("/", 1)[-1]


def record(ngsi, sid: str) -> dict[str, Any]:
    r = ngsi.get(f"/csourceSubscriptions/{sid}")
    assert r.status_code == 200, r.text
    return r.json()["notification"]


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    out = [g["body"] for g in receiver.got]
    receiver.got.clear()
    return out


def test_created_updated_and_deleted_registrations_are_notified(ngsi, receiver, pump):
    sid = subscribe(ngsi, receiver.url)
    pump()
    assert bodies(receiver) == []  # nothing registered yet: no initial notification
    assert "timesSent" not in record(ngsi, sid)

    other = register(ngsi, ["Vehicle"])
    rid = register(ngsi, ["Building", "Vehicle"])
    pump()
    [n] = bodies(receiver)
    assert n["type"] == "ContextSourceNotification" and n["subscriptionId"] == sid
    assert n["triggerReason"] == "newlyMatching" and n["id"].startswith("urn:ngsi-ld:Notification:")
    [reg] = n["data"]
    assert reg["id"] == rid and reg["type"] == "ContextSourceRegistration"
    assert reg["information"] == [{"entities": [{"type": ["Building"]}]}]  # only what the subscription asks about
    assert receiver.got == [] and "notifiedAt" in n
    rec = record(ngsi, sid)
    assert (rec["timesSent"], rec["status"]) == (1, "ok") and rec["lastSuccess"] == rec["lastNotification"]
    assert "lastFailure" not in rec and "timesFailed" not in rec  # as the entity subscriptions show it

    assert ngsi.send("PATCH", f"/csourceRegistrations/{rid}", {"endpoint": "http://127.0.0.1:9/other"}).status_code == 204
    pump()
    [n] = bodies(receiver)
    assert n["triggerReason"] == "updated" and n["data"][0]["endpoint"] == "http://127.0.0.1:9/other"

    assert ngsi.send("PATCH", f"/csourceRegistrations/{other}", {"endpoint": "http://127.0.0.1:9/x"}).status_code == 204
    pump()
    assert bodies(receiver) == []  # never matched

    assert ngsi.send("PATCH", f"/csourceRegistrations/{rid}",
                     {"information": [{"entities": [{"type": "Bus"}]}]}).status_code == 204
    pump()
    [n] = bodies(receiver)
    assert n["triggerReason"] == "noLongerMatching" and n["data"][0]["id"] == rid
    assert ngsi.send("DELETE", f"/csourceRegistrations/{rid}").status_code == 204
    pump()
    assert bodies(receiver) == []  # it no longer matched

    again = register(ngsi, ["Building"])
    pump()
    assert [n["triggerReason"] for n in bodies(receiver)] == ["newlyMatching"]
    assert ngsi.send("DELETE", f"/csourceRegistrations/{again}").status_code == 204
    pump()
    [n] = bodies(receiver)
    assert n["triggerReason"] == "noLongerMatching" and n["data"][0]["id"] == again
    assert record(ngsi, sid)["timesSent"] == 5


def test_a_subscription_is_sent_what_it_matches_when_created_and_when_changed(ngsi, receiver, pump):
    building = register(ngsi, ["Building"])
    vehicle = register(ngsi, ["Vehicle"])
    pump()
    sid = subscribe(ngsi, receiver.url)
    pump()
    [n] = bodies(receiver)
    assert n["triggerReason"] == "newlyMatching" and [d["id"] for d in n["data"]] == [building]

    assert ngsi.send("PATCH", f"/csourceSubscriptions/{sid}", {"entities": [{"type": "Vehicle"}]}).status_code == 204
    pump()
    [n] = bodies(receiver)
    assert n["triggerReason"] == "newlyMatching" and [d["id"] for d in n["data"]] == [vehicle]
    patch = {"entities": [{"type": "Vehicle"}, {"type": "Building"}]}
    assert ngsi.send("PATCH", f"/csourceSubscriptions/{sid}", patch).status_code == 204
    pump()
    [n] = bodies(receiver)
    assert sorted(d["id"] for d in n["data"]) == sorted([building, vehicle])

    subscribe(ngsi, receiver.url, entities=[{"type": "Bus"}])  # matches nothing: sends nothing
    pump()
    assert bodies(receiver) == []


def test_paused_expired_and_unmatched_subscriptions_are_not_notified(ngsi, receiver, pump, monkeypatch):
    from citybase.twin.sources import notifying

    paused = subscribe(ngsi, receiver.url + "/paused", isActive=False)
    soon = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    subscribe(ngsi, receiver.url + "/expiring", expiresAt=soon)
    subscribe(ngsi, receiver.url + "/by-id", entities=[{"type": "Building", "id": "urn:ngsi-ld:Building:B9"}])
    subscribe(ngsi, receiver.url + "/pattern", entities=[{"type": "Building", "idPattern": ".*:B[0-9]$"}])
    subscribe(ngsi, receiver.url + "/vehicle", entities=[{"type": "Vehicle"}])
    pump()
    later = datetime.now(UTC) + timedelta(minutes=2)  # the change matched after "expiring" expired
    match = notifying.match_change
    monkeypatch.setattr(notifying, "match_change", lambda **kw: match(**{**kw, "now": later}))
    rid = register(ngsi, ["Building"])
    pump()
    assert sorted(g["path"] for g in receiver.got) == ["/notify/by-id", "/notify/pattern"]  # B9 may be registered
    receiver.got.clear()
    assert ngsi.get(f"/csourceSubscriptions/{paused}").json()["status"] == "paused"
    assert "timesSent" not in record(ngsi, paused)
    assert ngsi.send("PATCH", f"/csourceSubscriptions/{paused}", {"isActive": True}).status_code == 204
    pump()  # active again: sent what it matches now
    assert [(g["path"], g["body"]["data"][0]["id"]) for g in receiver.got] == [("/notify/paused", rid)]


def test_attributes_context_source_properties_place_and_time_select(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/height", watchedAttributes=["height"])
    subscribe(ngsi, receiver.url + "/csf", csf="ex:district==\"徐汇\"")
    subscribe(ngsi, receiver.url + "/q", q="ex:floors>3")
    subscribe(ngsi, receiver.url + "/near", geoQ={"georel": "near;maxDistance==2000", "geometry": "Point",
                                                 "coordinates": [121.43, 31.19]})
    subscribe(ngsi, receiver.url + "/time", temporalQ={"timerel": "after", "timeAt": "2024-06-01T00:00:00Z",
                                                      "timeproperty": "observedAt"})
    got = ngsi.get(f"/csourceSubscriptions/{subscribe(ngsi, receiver.url + '/shown', csf='ex:floors>1')}").json()
    assert got["csf"] == "ex:floors>1"
    pump()
    receiver.got.clear()
    register(ngsi, ["Building"], **{"information": [{"entities": [{"type": "Building"}], "propertyNames": ["name"]}]})
    pump()
    assert receiver.got == []  # no such attribute, properties, location or observation interval
    register(ngsi, ["Building"], **{
        "information": [{"entities": [{"type": "Building"}], "propertyNames": ["height"]}],
        EX + "district": "徐汇", EX + "floors": 5,
        "location": {"type": "Point", "coordinates": [121.431, 31.19]},
        "observationInterval": {"startAt": "2024-01-01T00:00:00Z", "endAt": "2025-01-01T00:00:00Z"}})
    pump()
    assert sorted(g["path"] for g in receiver.got) == ["/notify/csf", "/notify/height", "/notify/near", "/notify/q",
                                                       "/notify/shown", "/notify/time"]
    bad = ngsi.post("/csourceSubscriptions", {"type": "Subscription", "entities": [{"type": "Building"}],
                                              "temporalQ": {"timerel": "between", "timeAt": "2024-01-01T00:00:00Z"},
                                              "notification": {"endpoint": {"uri": receiver.url}}})
    assert bad.status_code == 400


def test_a_failing_receiver_is_retried_and_counted(ngsi, receiver, pump, client):
    from citybase.twin.domain import DOMAIN

    retry = next(s for s in DOMAIN.consumers if s.name == "twin-csource-notify").retry_delay
    assert [retry(a) for a in (1, 2, 3, 8)] == [10.0, 20.0, 40.0, 600.0]  # the back-off the runtime uses

    sid = subscribe(ngsi, receiver.url)
    receiver.answer(500)
    register(ngsi, ["Building"])
    pump()
    assert len(receiver.got) == 2 and len({g["body"]["id"] for g in receiver.got}) == 1  # one notification, 2 tries
    n = record(ngsi, sid)
    assert (n["timesSent"], n["timesFailed"], n["status"]) == (2, 1, "ok")
    assert n["lastFailure"] <= n["lastSuccess"] == n["lastNotification"]

    gone = subscribe(ngsi, "http://127.0.0.1:9/nobody", entities=[{"type": "Bus"}])
    register(ngsi, ["Bus"])
    pump()
    n = record(ngsi, gone)
    max_deliver = client.app.state.bus.max_deliver
    assert n["timesSent"] == n["timesFailed"] == max_deliver and n["status"] == "failed"
    assert n["lastFailure"] == n["lastNotification"] and "lastSuccess" not in n
    assert not [d for d in client.app.state.bus.dead_letters() if "csource_notification" in d.subject]


def test_periodic_subscriptions_to_registrations(ngsi, receiver, pump, client):
    from citybase.twin.sources.wiring import periodic

    rid = register(ngsi, ["Building"])
    pump()
    sid = subscribe(ngsi, receiver.url, timeInterval=3600)
    pump()
    assert receiver.got == []  # the timer sends the first one
    assert ngsi.get(f"/csourceSubscriptions/{sid}").json()["timeInterval"] == 3600
    periodic(client.app.state.runtime)
    pump()
    [n] = bodies(receiver)
    assert n["subscriptionId"] == sid and [d["id"] for d in n["data"]] == [rid]
    register(ngsi, ["Building"])  # a periodic subscription does not follow changes
    periodic(client.app.state.runtime)  # and its next one is due in an hour
    pump()
    assert receiver.got == []
    assert record(ngsi, sid)["timesSent"] == 1


def test_registrations_of_another_tenant_are_not_notified(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url)
    pump()
    body = {"type": "ContextSourceRegistration", "endpoint": "http://127.0.0.1:9/b",
            "information": [{"entities": [{"type": "Building"}]}], "@context": [CTX]}
    r = ngsi.client.post("/ngsi-ld/v1/csourceRegistrations", json=body,
                         headers={**ngsi.headers, "NGSILD-Tenant": ngsi.tenant + "-other",
                                  "Content-Type": "application/ld+json"})
    assert r.status_code == 201, r.text
    pump()
    assert receiver.got == []
