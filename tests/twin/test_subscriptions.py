"""NGSI-LD subscriptions and notifications on both engines: the API, what fires and what is sent, received by a
real HTTP server and the real Mosquitto broker. The consumers are driven by hand (relay drained, then each
consumer's batch), never by waiting."""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.twin.conftest import EX, building

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
B1 = "urn:ngsi-ld:Building:B1"


# ------------------------------------------------------------------------------------------ fixtures


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv: Any = self.server
        srv.got.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(body)})
        status = srv.statuses.pop(0) if srv.statuses else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclasses.dataclass
class Receiver:
    url: str
    server: Any

    @property
    def got(self) -> list[dict[str, Any]]:
        return self.server.got

    def answer(self, *statuses: int) -> None:
        """The next answers (then 204)."""
        self.server.statuses.extend(statuses)


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


def consumers_of(app: Any) -> list[Any]:
    """The twin's two subscription consumers on this app's runtime, with no back-off (a retry comes back at
    the next batch), made once per app."""
    from citybase.kernel.runtime import DomainConsumer
    from citybase.twin.domain import DOMAIN

    if id(app) not in _consumers:
        specs = [dataclasses.replace(s, retry_delay=lambda attempt: 0.0) for s in DOMAIN.consumers
                 if s.name in ("twin-subscriptions", "twin-notify")]
        assert len(specs) == 2, "the twin's descriptor runs both subscription consumers"
        _consumers[id(app)] = [DomainConsumer(s, app.state.runtime) for s in specs]
    return _consumers[id(app)]


def run_workers(app: Any) -> int:
    """Relay, match and deliver until nothing moves; returns how many deliveries were settled."""
    settled = 0
    for _ in range(50):
        n = app.state.relay.drain()
        for c in consumers_of(app):
            k = c.run_once(timeout=0.05)
            n += k
            settled += k
        if not n:
            return settled
    raise AssertionError("the consumers did not settle")


@pytest.fixture
def pump(client):
    run_workers(client.app)  # what earlier tests left on the bus
    return lambda: run_workers(client.app)


def subscribe(ngsi, uri: str, **members: Any) -> str:
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Building"}],
                            "notification": {"endpoint": {"uri": uri}}}
    body.update(members)
    r = ngsi.post("/subscriptions", {k: v for k, v in body.items() if v is not None})
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:")
    return r.headers["location"].removeprefix("/ngsi-ld/v1/subscriptions/")


def sub(ngsi, sid: str) -> dict[str, Any]:
    r = ngsi.get(f"/subscriptions/{sid}")
    assert r.status_code == 200, r.text
    return r.json()


def patch(ngsi, eid: str, **attrs: Any) -> None:
    r = ngsi.send("PATCH", f"/entities/{eid}/attrs", attrs)
    assert r.status_code == 204, r.text


def _err(r, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.json()["type"] == ERR + kind, r.json()
    return r.json()


# ------------------------------------------------------------------------------------------ the API


def test_create_retrieve_query_update_delete(ngsi):
    sid = subscribe(ngsi, "http://127.0.0.1:9/n", watchedAttributes=["height"], q="height>5",
                    description="高楼", notification={"attributes": ["height"], "format": "keyValues",
                                                     "endpoint": {"uri": "http://127.0.0.1:9/n",
                                                                  "receiverInfo": [{"key": "X-Token", "value": "t"}]}})
    s = sub(ngsi, sid)
    assert s["id"] == sid and s["type"] == "Subscription" and s["description"] == "高楼"
    assert s["entities"] == [{"type": "Building"}]  # compacted in the caller's @context
    assert s["watchedAttributes"] == ["height"] and s["q"] == "height>5"
    assert s["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]  # the default, shown
    assert "isActive" not in s and s["status"] == "active"  # echoed only when the subscriber set it
    assert s["jsonldContext"].startswith("http://testserver/ngsi-ld/v1/jsonldContexts/")  # the inline @context
    n = s["notification"]
    assert n["attributes"] == ["height"] and n["format"] == "keyValues" and "timesSent" not in n  # none yet
    assert n["endpoint"]["receiverInfo"] == [{"key": "X-Token", "value": "t"}] and "status" not in n
    ngsi.linked = False  # without the caller's context the names are full IRIs
    assert sub(ngsi, sid)["entities"] == [{"type": EX + "Building"}]
    ngsi.linked = True
    hosted = ngsi.client.get(s["jsonldContext"].removeprefix("http://testserver"), headers=ngsi.headers)
    assert hosted.status_code == 200 and hosted.json()["@context"][0]["Building"] == EX + "Building"

    others = [subscribe(ngsi, "http://127.0.0.1:9/n") for _ in range(3)]
    r = ngsi.get("/subscriptions", count="true", limit="2", offset="1")
    assert r.status_code == 200 and r.headers["ngsild-results-count"] == "4"
    assert [x["id"] for x in r.json()] == others[:2]

    r = ngsi.send("PATCH", f"/subscriptions/{sid}", {"notification": {"format": "normalized"}, "isActive": False,
                                                     "q": None})
    assert r.status_code == 204, r.text
    s = sub(ngsi, sid)
    assert s["notification"]["format"] == "normalized" and s["notification"]["attributes"] == ["height"]
    assert s["notification"]["endpoint"]["uri"] == "http://127.0.0.1:9/n"  # notification merged member by member
    assert s["status"] == "paused" and "q" not in s and s["isActive"] is False

    _err(ngsi.post("/subscriptions", {"id": sid, "type": "Subscription", "entities": [{"type": "Building"}],
                                      "notification": {"endpoint": {"uri": "http://x.org/n"}}}), 409, "AlreadyExists")
    assert ngsi.send("DELETE", f"/subscriptions/{sid}").status_code == 204
    _err(ngsi.get(f"/subscriptions/{sid}"), 404, "ResourceNotFound")
    _err(ngsi.send("DELETE", f"/subscriptions/{sid}"), 404, "ResourceNotFound")
    assert ngsi.get("/subscriptions/", count="true").headers["ngsild-results-count"] == "3"


def test_subscriptions_belong_to_their_tenant(ngsi):
    sid = subscribe(ngsi, "http://127.0.0.1:9/n")
    other = dataclasses.replace(ngsi, tenant=f"t{uuid.uuid4().hex[:10]}")
    _err(other.get("/subscriptions"), 404, "NonexistentTenant")
    subscribe(other, "http://127.0.0.1:9/n")
    _err(other.get(f"/subscriptions/{sid}"), 404, "ResourceNotFound")
    assert len(other.get("/subscriptions").json()) == 1


GOOD = {"type": "Subscription", "entities": [{"type": "Building"}], "notification": {"endpoint": {"uri": "http://x.org/n"}}}


@pytest.mark.parametrize(("change", "detail"), [
    ({"type": "Registration"}, "Subscription"),
    ({"entities": []}, "entities"),
    ({"entities": [{"id": "urn:x:1"}]}, "type"),
    ({"entities": [{"type": "Building", "idPattern": "("}]}, "idPattern"),
    ({"entities": [{"type": "Building", "id": "not a uri"}]}, "id"),
    ({"entities": None, "watchedAttributes": None}, "entities, watchedAttributes"),
    ({"watchedAttributes": []}, "watchedAttributes"),
    ({"q": "height>>5"}, "q"),
    ({"geoQ": {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": [200, 0]}}, "geoQ"),
    ({"geoQ": {"georel": 3, "geometry": "Point", "coordinates": [1, 0]}}, "geoQ"),
    ({"notificationTrigger": ["entityChanged"]}, "notificationTrigger"),
    ({"throttling": -1}, "throttling"),
    ({"timeInterval": 10, "watchedAttributes": ["height"]}, "timeInterval"),
    ({"timeInterval": 10, "throttling": 5}, "timeInterval"),
    ({"expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
    ({"expiresAt": "tomorrow"}, "expiresAt"),
    ({"isActive": "yes"}, "isActive"),
    ({"notification": {}}, "endpoint"),
    ({"notification": {"endpoint": {"uri": "ftp://x.org/n"}}}, "http"),
    ({"notification": {"endpoint": {"uri": "mqtt://x.org"}}}, "topic"),
    ({"notification": {"endpoint": {"uri": "http://x.org/n", "accept": "text/html"}}}, "accept"),
    ({"notification": {"endpoint": {"uri": "http://x.org/n", "receiverInfo": [{"key": "A\nB", "value": "v"}]}}},
     "receiverInfo"),
    ({"notification": {"endpoint": {"uri": "http://x.org/n", "receiverInfo": [{"key": "X-City", "value": "徐汇"}]}}},
     "ASCII"),
    ({"notification": {"format": "xml", "endpoint": {"uri": "http://x.org/n"}}}, "format"),
    ({"notification": {"attributes": "height", "endpoint": {"uri": "http://x.org/n"}}}, "attributes"),
    ({"temporalQ": {}}, "temporalQ"),
])
def test_invalid_subscriptions_are_bad_request_data(ngsi, change, detail):
    body = {**GOOD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = ngsi.post("/subscriptions", body)
    assert detail in _err(r, 400, "BadRequestData")["detail"]


def test_invalid_updates_and_ids(ngsi):
    sid = subscribe(ngsi, "http://127.0.0.1:9/n")
    _err(ngsi.send("PATCH", f"/subscriptions/{sid}", {"timeInterval": 5, "watchedAttributes": ["a"]}), 400,
         "BadRequestData")
    _err(ngsi.send("PATCH", f"/subscriptions/{sid}", {"id": "urn:ngsi-ld:Subscription:other"}), 400, "BadRequestData")
    _err(ngsi.send("PATCH", f"/subscriptions/{sid}", {}), 400, "BadRequestData")
    _err(ngsi.send("PATCH", "/subscriptions/urn:ngsi-ld:Subscription:none", {"isActive": False}), 404,
         "ResourceNotFound")
    _err(ngsi.get("/subscriptions/not%20a%20uri"), 400, "BadRequestData")
    _err(ngsi.get("/subscriptions", limit="x"), 400, "BadRequestData")
    assert sub(ngsi, sid)["status"] == "active"  # nothing of the refused updates was stored


# ------------------------------------------------------------------------------------------ notifications


def test_changes_of_a_tenant_never_subscribed_are_skipped_without_a_write_until_it_subscribes(
        ngsi, client, receiver, pump):
    matcher = consumers_of(client.app)[0]
    assert matcher.consumer == "twin-subscriptions"
    skipped, handled = matcher.skipped, matcher.handled
    assert ngsi.post("/entities", building(1)).status_code == 201
    patch(ngsi, B1, height={"type": "Property", "value": 11})
    pump()
    assert matcher.skipped - skipped == 2 and matcher.handled - handled >= 2  # acked after one read each
    subscribe(ngsi, receiver.url)
    patch(ngsi, B1, height={"type": "Property", "value": 12})
    pump()
    assert matcher.skipped - skipped == 2  # the tenant has a subscription now: matched, and notified
    assert [g["body"]["data"][0]["height"]["value"] for g in receiver.got] == [12]


def test_a_subscription_fires_on_create_and_update_with_its_format_and_attributes(ngsi, receiver, pump):
    sid = subscribe(ngsi, receiver.url, notification={
        "attributes": ["height"], "format": "keyValues",
        "endpoint": {"uri": receiver.url, "receiverInfo": [{"key": "X-City", "value": "Xuhui"}]}})
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()
    assert len(receiver.got) == 1
    got = receiver.got[0]
    n = got["body"]
    assert n["type"] == "Notification" and n["id"].startswith("urn:ngsi-ld:Notification:")
    assert n["subscriptionId"] == sid and n["notifiedAt"].endswith("Z") and n["triggerReason"] == "attributeCreated"
    assert n["data"] == [{"id": B1, "type": "Building", "height": 10}]  # keyValues, only the attributes asked
    h = got["headers"]
    assert h["content-type"] == "application/json" and h["x-city"] == "Xuhui" and h["ngsild-tenant"] == ngsi.tenant
    assert h["link"].startswith(f"<{sub(ngsi, sid)['jsonldContext']}>") and "json-ld#context" in h["link"]

    patch(ngsi, B1, height={"type": "Property", "value": 99})
    pump()
    assert [g["body"]["data"][0]["height"] for g in receiver.got] == [10, 99]
    assert receiver.got[1]["body"]["triggerReason"] == "attributeUpdated"
    assert receiver.got[1]["body"]["id"] != n["id"]
    s = sub(ngsi, sid)["notification"]
    assert s["timesSent"] == 2 and "timesFailed" not in s and s["status"] == "ok"  # shown once one failed
    assert s["lastSuccess"] == s["lastNotification"] and "lastFailure" not in s


def test_normalized_concise_and_ld_json_notifications(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url, notification={"format": "normalized", "sysAttrs": True,
                                                "endpoint": {"uri": receiver.url + "/n"}})
    subscribe(ngsi, receiver.url, notification={"format": "concise",
                                                "endpoint": {"uri": receiver.url + "/c", "accept": "application/ld+json"}})
    assert ngsi.post("/entities", building(2)).status_code == 201
    pump()
    by = {g["path"]: g for g in receiver.got}
    normalized = by["/notify/n"]["body"]["data"][0]
    assert normalized["height"]["type"] == "Property" and normalized["height"]["value"] == 20
    assert normalized["height"]["createdAt"].endswith("Z") and normalized["createdAt"].endswith("Z")
    assert normalized["location"]["type"] == "GeoProperty"
    concise = by["/notify/c"]
    assert concise["headers"]["content-type"] == "application/ld+json" and "link" not in concise["headers"]
    assert concise["body"]["@context"].startswith("http://testserver/ngsi-ld/v1/jsonldContexts/")
    assert concise["body"]["data"][0]["height"] == {"value": 20, "unitCode": "MTR"}
    assert concise["body"]["data"][0]["name"] == "徐汇2号楼"
    assert concise["body"]["data"][0]["@context"] == concise["body"]["@context"]  # each entity is JSON-LD too


def test_watched_attributes_q_and_geoq_filter(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/watch", watchedAttributes=["name"])
    subscribe(ngsi, receiver.url + "/q", q="height>50")
    subscribe(ngsi, receiver.url + "/geo", geoQ={"georel": "near;maxDistance==200", "geometry": "Point",
                                                 "coordinates": [121.431, 31.19]})
    for n in (1, 9):  # B1 at 121.431 (height 10), B9 at 121.439 (height 90, 760 m east)
        assert ngsi.post("/entities", building(n)).status_code == 201
    pump()
    paths = sorted((g["path"], g["body"]["data"][0]["id"]) for g in receiver.got)
    assert paths == [("/notify/geo", B1), ("/notify/q", "urn:ngsi-ld:Building:B9"),
                     ("/notify/watch", B1), ("/notify/watch", "urn:ngsi-ld:Building:B9")]
    receiver.got.clear()
    patch(ngsi, B1, height={"type": "Property", "value": 60})  # not name: /watch stays quiet; now q matches
    pump()
    assert sorted(g["path"] for g in receiver.got) == ["/notify/geo", "/notify/q"]


def test_entities_by_id_and_id_pattern_and_watched_attributes_alone(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/id", entities=[{"type": "Building", "id": "urn:ngsi-ld:Building:B2"}])
    subscribe(ngsi, receiver.url + "/pattern", entities=[{"type": "Building", "idPattern": "B[13]$"}])
    subscribe(ngsi, receiver.url + "/attr", entities=None, watchedAttributes=["temperature"])
    for n in (1, 2, 3):
        assert ngsi.post("/entities", building(n)).status_code == 201
    assert ngsi.post("/entities", {"id": "urn:ngsi-ld:Sensor:S1", "type": "Sensor", "temperature": 21}).status_code == 201
    pump()
    paths = sorted((g["path"], g["body"]["data"][0]["id"]) for g in receiver.got)
    assert paths == [("/notify/attr", "urn:ngsi-ld:Sensor:S1"), ("/notify/id", "urn:ngsi-ld:Building:B2"),
                     ("/notify/pattern", B1), ("/notify/pattern", "urn:ngsi-ld:Building:B3")]


def test_entity_and_attribute_triggers_and_show_changes(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/deleted", notificationTrigger=["entityDeleted", "attributeDeleted"])
    subscribe(ngsi, receiver.url + "/changes", notificationTrigger=["attributeUpdated"],
              notification={"showChanges": True, "attributes": ["height"], "endpoint": {"uri": receiver.url + "/changes"}})
    assert ngsi.post("/entities", building(4)).status_code == 201
    pump()
    assert receiver.got == []  # creation is none of these triggers
    patch(ngsi, "urn:ngsi-ld:Building:B4", height={"type": "Property", "value": 41})
    pump()
    [changed] = receiver.got
    assert changed["path"] == "/notify/changes"
    assert changed["body"]["data"][0]["height"] == {"type": "Property", "value": 41, "previousValue": 40}
    receiver.got.clear()
    assert ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B4/attrs/name").status_code == 204
    pump()
    [gone] = receiver.got
    assert gone["path"] == "/notify/deleted" and gone["body"]["triggerReason"] == "attributeDeleted"
    assert gone["body"]["data"][0]["name"] == {"type": "Property", "value": "urn:ngsi-ld:null"}
    receiver.got.clear()
    assert ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B4").status_code == 204
    pump()
    [deleted] = receiver.got
    assert deleted["body"]["triggerReason"] == "entityDeleted"
    data = deleted["body"]["data"][0]
    assert data["id"] == "urn:ngsi-ld:Building:B4" and data["type"] == "Building" and data["deletedAt"].endswith("Z")


def test_throttling_keeps_one_notification_per_period(ngsi, receiver, pump):
    sid = subscribe(ngsi, receiver.url, throttling=3600)
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()
    patch(ngsi, B1, height={"type": "Property", "value": 11})
    patch(ngsi, B1, height={"type": "Property", "value": 12})
    pump()
    assert len(receiver.got) == 1 and sub(ngsi, sid)["throttling"] == 3600


def test_paused_and_expired_subscriptions_do_not_fire(ngsi, receiver, pump, client):
    from citybase.twin.subscriptions import service
    from citybase.twin.subscriptions.wiring import contexts, index_cache

    paused = subscribe(ngsi, receiver.url + "/paused", isActive=False)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    subscribe(ngsi, receiver.url + "/expiring", expiresAt=tomorrow)
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()
    assert [g["path"] for g in receiver.got] == ["/notify/expiring"]
    assert sub(ngsi, paused)["status"] == "paused"

    # the day after tomorrow the second one has expired: the same change fires nothing
    rt = client.app.state.runtime
    change = {"tenant": ngsi.tenant, "id": B1, "types": [EX + "Building"], "op": "update", "attrs": [EX + "height"],
              "modified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    with rt.sessions() as s:
        assert service.match_change(session=s, change=change, cache=index_cache(rt), contexts=contexts(rt)) == 1
        assert service.match_change(session=s, change=change, cache=index_cache(rt), contexts=contexts(rt),
                                    now=datetime.now(UTC) + timedelta(days=2)) == 0
        s.rollback()

    assert ngsi.send("PATCH", f"/subscriptions/{paused}", {"isActive": True}).status_code == 204
    receiver.got.clear()
    patch(ngsi, B1, height={"type": "Property", "value": 1})
    pump()
    assert sorted(g["path"] for g in receiver.got) == ["/notify/expiring", "/notify/paused"]


def test_expiry_shows_in_the_status():
    from citybase.twin.subscriptions.payload import status

    now = datetime.now(UTC)
    assert status(True, now + timedelta(seconds=1), now) == "active"
    assert status(True, now, now) == "expired" and status(False, now - timedelta(days=1), now) == "expired"
    assert status(False, None, now) == "paused"


def test_a_failing_endpoint_is_retried_counted_and_given_up(ngsi, receiver, pump, client):
    from citybase.twin.domain import DOMAIN

    retry = next(s for s in DOMAIN.consumers if s.name == "twin-notify").retry_delay
    assert [retry(a) for a in (1, 2, 3, 8)] == [1.0, 2.0, 4.0, 60.0]  # the back-off the runtime uses

    sid = subscribe(ngsi, receiver.url)
    receiver.answer(500, 503)
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()
    assert len(receiver.got) == 3 and len({g["body"]["id"] for g in receiver.got}) == 1  # one notification, 3 tries
    n = sub(ngsi, sid)["notification"]
    assert (n["timesSent"], n["timesFailed"], n["status"]) == (3, 2, "ok")
    assert n["lastFailure"] <= n["lastSuccess"] == n["lastNotification"]

    max_deliver = client.app.state.bus.max_deliver
    receiver.answer(*[500] * (max_deliver + 2))
    receiver.got.clear()
    patch(ngsi, B1, height={"type": "Property", "value": 1})
    pump()
    assert len(receiver.got) == max_deliver  # then given up, never sent again
    n = sub(ngsi, sid)["notification"]
    assert (n["timesSent"], n["timesFailed"], n["status"]) == (3 + max_deliver, 2 + max_deliver, "failed")
    assert n["lastFailure"] == n["lastNotification"]
    assert not [d for d in client.app.state.bus.dead_letters() if "twin.notification" in d.subject]


def test_unreachable_endpoint_counts_as_failed(ngsi, pump, client):
    sid = subscribe(ngsi, "http://127.0.0.1:9/nobody")
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()
    n = sub(ngsi, sid)["notification"]
    assert n["timesFailed"] == n["timesSent"] == client.app.state.bus.max_deliver and n["status"] == "failed"


def test_mqtt_notifications_reach_a_subscriber_of_the_broker(ngsi, pump):
    import paho.mqtt.client as mqtt

    from tests.conftest import unavailable

    topic = f"citybase/test/{uuid.uuid4().hex}"
    got: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_subscribe = lambda *a: subscribed.set()
    listener.on_message = lambda _c, _u, msg: got.put(msg)
    try:
        listener.connect("127.0.0.1", 1883)
    except OSError as exc:
        unavailable(f"Mosquitto at 127.0.0.1:1883: {exc}")
    listener.loop_start()
    try:
        listener.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        sid = subscribe(ngsi, f"mqtt://127.0.0.1:1883/{topic}", notification={
            "format": "keyValues", "endpoint": {"uri": f"mqtt://127.0.0.1:1883/{topic}",
                                                "receiverInfo": [{"key": "X-City", "value": "Xuhui"}]}})
        assert ngsi.post("/entities", building(3)).status_code == 201
        pump()
        msg = got.get(timeout=10)
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert msg.topic == topic and msg.qos == 1
    m = json.loads(msg.payload)
    assert m["metadata"]["Content-Type"] == "application/json" and m["metadata"]["X-City"] == "Xuhui"
    assert "json-ld#context" in m["metadata"]["Link"]
    assert m["body"]["subscriptionId"] == sid and m["body"]["data"][0]["height"] == 30
    assert sub(ngsi, sid)["notification"]["status"] == "ok"


def test_periodic_notifications(ngsi, receiver, pump, client):
    from citybase.twin.subscriptions.wiring import periodic

    sid = subscribe(ngsi, receiver.url, timeInterval=3600, q="height<25")
    assert sub(ngsi, sid)["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]  # shown, as set by default
    for n in (1, 2, 3):
        assert ngsi.post("/entities", building(n)).status_code == 201
    pump()
    assert receiver.got == []  # a periodic subscription does not follow changes
    periodic(client.app.state.runtime)
    pump()
    [got] = receiver.got
    assert sorted(e["id"] for e in got["body"]["data"]) == [B1, "urn:ngsi-ld:Building:B2"]
    periodic(client.app.state.runtime)  # the next one is due in an hour
    pump()
    assert len(receiver.got) == 1


def test_a_subscription_made_since_the_index_was_built_fires(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/first")
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()  # the tenant's index is built now; no cache listener runs in these tests
    subscribe(ngsi, receiver.url + "/second")
    patch(ngsi, B1, height={"type": "Property", "value": 3})
    pump()
    assert sorted(g["path"] for g in receiver.got) == ["/notify/first", "/notify/first", "/notify/second"]


def test_the_index_looks_only_at_candidates():
    from citybase.twin.query import TypeIs
    from citybase.twin.subscriptions.matching import Compiled, Selector, TenantIndex

    def one(pk: int, *, id_: str | None = None, t: str = "T", watched: frozenset | None = None,
            entities: bool = True) -> Compiled:
        sel = (Selector(TypeIs(t), frozenset({t}), id_),) if entities else ()
        return Compiled(pk, f"s{pk}", sel, watched, frozenset({"attributeUpdated"}))

    subs = [one(i, id_=f"urn:e:{i}") for i in range(10_000)] + [one(10_001, t="U"),
                                                               one(10_002, entities=False, watched=frozenset({"a"}))]
    idx = TenantIndex.of(7, subs)
    assert idx.size == 10_002
    assert [s.pk for s in idx.candidates("urn:e:42", ["T"], ["b"])] == [42]
    assert sorted(s.pk for s in idx.candidates("urn:x", ["U"], ["a"])) == [10_001, 10_002]
    assert idx.candidates("urn:x", ["V"], ["b"]) == []


def test_a_subscription_survives_a_restart(ngsi, receiver, pump, city):
    from fastapi.testclient import TestClient

    from citybase.api.app import create_app
    from citybase.bus.memory import InProcessBus

    sid = subscribe(ngsi, receiver.url)
    assert ngsi.post("/entities", building(1)).status_code == 201
    pump()
    assert len(receiver.got) == 1
    # a new process on the same database: a fresh app, bus, index and consumers
    app = create_app(engine=city.engine, bus=InProcessBus())
    fresh = TestClient(app)  # its lifespan is not entered: the consumers are driven here, as above
    h = {**ngsi.headers, "NGSILD-Tenant": ngsi.tenant}
    r = fresh.request("PATCH", f"/ngsi-ld/v1/entities/{B1}/attrs", content=json.dumps({"height": 77}),
                      headers={**h, "Content-Type": "application/json", "Link": ngsi._h(None, False)["Link"]})
    assert r.status_code == 204, r.text
    run_workers(app)
    assert fresh.get(f"/ngsi-ld/v1/subscriptions/{sid}", headers=h).json()["notification"]["timesSent"] == 2
    assert [g["body"]["data"][0]["height"]["value"] for g in receiver.got] == [10, 77]
    assert receiver.got[1]["body"]["subscriptionId"] == sid


def test_deleted_attributes_keep_their_type_and_show_previous_values(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/changes", notificationTrigger=["attributeDeleted", "entityDeleted"],
              notification={"showChanges": True, "endpoint": {"uri": receiver.url + "/changes"}})
    subscribe(ngsi, receiver.url + "/sys", notificationTrigger=["attributeDeleted", "entityDeleted"],
              notification={"sysAttrs": True, "endpoint": {"uri": receiver.url + "/sys"}})
    subscribe(ngsi, receiver.url + "/watched", watchedAttributes=["name"], notificationTrigger=["attributeDeleted"])
    body = building(5, owner={"type": "Relationship", "object": "urn:ngsi-ld:Person:P1"},
                    name={"type": "LanguageProperty", "languageMap": {"zh": "徐汇5号楼", "en": "Xuhui 5"}})
    assert ngsi.post("/entities", body).status_code == 201
    pump()
    assert ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B5/attrs/owner").status_code == 204
    pump()
    by = {g["path"]: g["body"]["data"][0] for g in receiver.got}
    assert by["/notify/changes"]["owner"] == {"type": "Relationship", "object": "urn:ngsi-ld:null",
                                              "previousObject": "urn:ngsi-ld:Person:P1"}
    sys = by["/notify/sys"]["owner"]
    assert sys["type"] == "Relationship" and sys["object"] == "urn:ngsi-ld:null"
    assert sys["createdAt"].endswith("Z") and sys["deletedAt"] >= sys["createdAt"]
    assert "/notify/watched" not in by  # not name
    receiver.got.clear()
    assert ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B5").status_code == 204
    pump()
    by = {g["path"]: g["body"] for g in receiver.got}
    changes = by["/notify/changes"]["data"][0]
    assert changes["name"] == {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"},
                               "previousLanguageMap": {"zh": "徐汇5号楼", "en": "Xuhui 5"}}
    assert changes["height"]["previousValue"] == 50 and "owner" not in changes  # gone before
    assert set(by["/notify/sys"]["data"][0]) == {"id", "type", "createdAt", "modifiedAt", "deletedAt"}
    watched = by["/notify/watched"]  # the entity's deletion deletes its watched attribute
    assert watched["triggerReason"] == "attributeDeleted"
    assert set(watched["data"][0]) == {"id", "type", "deletedAt", "name"}


def test_patch_or_delete_without_a_subscription_id_is_not_an_operation(ngsi):
    _err(ngsi.send("DELETE", "/subscriptions/"), 405, "OperationNotSupported")
    _err(ngsi.send("PATCH", "/subscriptions/", {"isActive": False}), 405, "OperationNotSupported")


def test_dataset_ids_pick_omit_and_joined_entities_in_notifications(ngsi, receiver, pump):
    fr = "urn:ngsi-ld:Dataset:fr"
    sid = subscribe(ngsi, receiver.url + "/ds", datasetId=[fr])
    assert sub(ngsi, sid)["datasetId"] == [fr]
    subscribe(ngsi, receiver.url + "/pick", notification={"pick": ["id", "name"],
                                                          "endpoint": {"uri": receiver.url + "/pick"}})
    subscribe(ngsi, receiver.url + "/omit", notification={"omit": ["type", "name", "height", "location"],
                                                          "endpoint": {"uri": receiver.url + "/omit"}})
    flat = subscribe(ngsi, receiver.url + "/flat", notification={"join": "flat", "joinLevel": 1,
                                                                 "endpoint": {"uri": receiver.url + "/flat"}})
    assert sub(ngsi, flat)["notification"]["join"] == "flat" and sub(ngsi, flat)["notification"]["joinLevel"] == 1
    subscribe(ngsi, receiver.url + "/inline", notification={"join": "inline",
                                                            "endpoint": {"uri": receiver.url + "/inline"}})
    owner = {"id": "urn:ngsi-ld:Sensor:O1", "type": "Sensor", "temperature": 20}
    assert ngsi.post("/entities", owner).status_code == 201
    pump()
    receiver.got.clear()
    body = building(6, owner={"type": "Relationship", "object": "urn:ngsi-ld:Sensor:O1"},
                    name=[{"type": "Property", "value": "徐汇6号楼"},
                          {"type": "Property", "value": "Xuhui six", "datasetId": fr}])
    assert ngsi.post("/entities", body).status_code == 201
    pump()
    by = {g["path"]: g["body"]["data"] for g in receiver.got}
    assert by["/notify/ds"] == [{"id": "urn:ngsi-ld:Building:B6", "type": "Building",
                                 "name": {"type": "Property", "value": "Xuhui six", "datasetId": fr}}]
    assert by["/notify/pick"][0]["id"] == "urn:ngsi-ld:Building:B6" and set(by["/notify/pick"][0]) == {"id", "name"}
    assert set(by["/notify/omit"][0]) == {"id", "owner"}
    assert [e["id"] for e in by["/notify/flat"]] == ["urn:ngsi-ld:Building:B6", "urn:ngsi-ld:Sensor:O1"]
    assert by["/notify/flat"][1]["temperature"]["value"] == 20
    [inline] = by["/notify/inline"]
    assert inline["owner"]["entity"]["id"] == "urn:ngsi-ld:Sensor:O1"
    r = ngsi.post("/subscriptions", {"type": "Subscription", "entities": [{"type": "Building"}],
                                     "notification": {"join": "sideways", "endpoint": {"uri": receiver.url}}})
    _err(r, 400, "BadRequestData")


def test_read_back_as_written_and_paged_with_links(ngsi):
    sid = subscribe(ngsi, "http://127.0.0.1:9/n", timeInterval=5, notification={"format": "keyValues",
                                                                                "endpoint": {"uri": "http://127.0.0.1:9/n"}})
    s = sub(ngsi, sid)
    assert s["timeInterval"] == 5 and isinstance(s["timeInterval"], int)  # 5 stays 5
    assert s["notificationTrigger"] == ["attributeCreated", "attributeUpdated"]
    assert "showChanges" not in s["notification"] and "sysAttrs" not in s["notification"]  # defaults not echoed
    shown = subscribe(ngsi, "http://127.0.0.1:9/n", notification={"showChanges": False,
                                                                  "endpoint": {"uri": "http://127.0.0.1:9/n"}})
    assert sub(ngsi, shown)["notification"]["showChanges"] is False  # set, so echoed
    subscribe(ngsi, "http://127.0.0.1:9/n")
    r = ngsi.get("/subscriptions", limit="1", offset="1")
    links = {part.split(";")[1].strip(): part.split(";")[0].strip() for part in r.headers["link"].split(", ")
             if "json-ld#context" not in part}
    assert links == {'rel="prev"': "</ngsi-ld/v1/subscriptions?limit=1&offset=0>",
                     'rel="next"': "</ngsi-ld/v1/subscriptions?limit=1&offset=2>"}
    assert "json-ld#context" in r.headers["link"]  # the @context link is still there
    last = ngsi.get("/subscriptions", limit="1", offset="2")
    assert 'rel="next"' not in last.headers["link"] and 'rel="prev"' in last.headers["link"]


def test_percent_encoded_q_and_a_whole_multi_instance_attribute_deleted(ngsi, receiver, pump):
    subscribe(ngsi, receiver.url + "/q", q='name=="Xuhui%20seven"', watchedAttributes=["height"])
    subscribe(ngsi, receiver.url + "/del", notificationTrigger=["attributeDeleted"], watchedAttributes=["name"])
    body = building(7, name=[{"type": "Property", "value": "Xuhui seven"},
                             {"type": "Property", "value": "Sieben", "datasetId": "urn:ngsi-ld:Dataset:de"}])
    assert ngsi.post("/entities", body).status_code == 201
    pump()
    assert [g["path"] for g in receiver.got] == ["/notify/q"]
    receiver.got.clear()
    r = ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B7/attrs/name", params={"deleteAll": "true"})
    assert r.status_code == 204, r.text
    pump()
    [gone] = receiver.got
    assert gone["body"]["data"][0]["name"] == {"type": "Property", "value": "urn:ngsi-ld:null"}


def test_deleting_one_instance_is_attribute_deleted(ngsi, receiver, pump):
    de = "urn:ngsi-ld:Dataset:de"
    subscribe(ngsi, receiver.url + "/n", notificationTrigger=["attributeDeleted"], watchedAttributes=["name"])
    subscribe(ngsi, receiver.url + "/kv", notificationTrigger=["attributeDeleted"], watchedAttributes=["name"],
              notification={"format": "keyValues", "endpoint": {"uri": receiver.url + "/kv"}})
    subscribe(ngsi, receiver.url + "/upd", notificationTrigger=["attributeUpdated"], watchedAttributes=["name"])
    body = building(8, name=[{"type": "Property", "value": "Xuhui eight"},
                             {"type": "Property", "value": "Acht", "datasetId": de}])
    assert ngsi.post("/entities", body).status_code == 201
    pump()
    r = ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B8/attrs/name", params={"datasetId": de})
    assert r.status_code == 204, r.text
    pump()
    by = {g["path"]: g["body"] for g in receiver.got}
    assert set(by) == {"/notify/n", "/notify/kv"}  # not an update
    assert by["/notify/n"]["triggerReason"] == "attributeDeleted"
    assert by["/notify/n"]["data"][0]["name"] == [{"type": "Property", "value": "Xuhui eight"},
                                                  {"type": "Property", "datasetId": de, "value": "urn:ngsi-ld:null"}]
    assert by["/notify/kv"]["data"][0]["name"] == {"dataset": {"@none": "Xuhui eight", de: "urn:ngsi-ld:null"}}
    receiver.got.clear()
    patch(ngsi, "urn:ngsi-ld:Building:B8", name={"type": "Property", "value": "Xuhui 8"})  # the instance stays gone
    pump()
    assert [g["path"] for g in receiver.got] == ["/notify/upd"]


def test_the_subscription_list_refuses_unknown_parameters(ngsi):
    subscribe(ngsi, "http://127.0.0.1:9/n")
    _err(ngsi.get("/subscriptions", colour="red"), 400, "InvalidRequest")
    assert ngsi.get("/subscriptions", limit="5", offset="0", count="true").status_code == 200
