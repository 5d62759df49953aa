"""Bus consumers of the incident loop: IoT alarms become incidents; webhooks are delivered with retries."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.bus.memory import InProcessBus
from citybase.geo.models import Building
from citybase.kernel.outbox import Relay
from citybase.ops import workers
from citybase.ops.notifications.models import Webhook, WebhookDelivery
from citybase.ops.workflow.models import Incident
from citybase.storage.db import make_sessionmaker


@pytest.fixture
def bus():
    return InProcessBus(max_deliver=3)


def _building(city, k):
    with Session(city.engine) as s:
        return s.query(Building).order_by(Building.id.desc()).offset(k).first()


def test_an_iot_alarm_becomes_an_urgent_incident(city, bus):
    b = _building(city, 1)
    consumer = workers.alarm_consumer(bus, make_sessionmaker(city.engine))
    device = f"WL-{uuid.uuid4().hex[:6]}"
    bus.publish("citybase.iot.alarm.raised", {"alarm_type": "water_level_high", "lon": b.lon, "lat": b.lat,
                                              "device_id": device, "value": 0.32})
    assert consumer.run_once(timeout=1) == 1
    with Session(city.engine) as s:
        inc = s.scalar(select(Incident).where(Incident.description.contains(device)))
    assert inc.channel == "iot" and inc.category_code == "05001" and inc.priority == "urgent"
    assert inc.status == "dispatched" and inc.deadline_mode == "natural"
    assert bus.dead_letters() == []


def test_malformed_alarms_are_kept_aside_with_the_reason_and_work_goes_on(city, bus):
    b = _building(city, 2)
    consumer = workers.alarm_consumer(bus, make_sessionmaker(city.engine))
    bus.publish_raw("citybase.iot.alarm.raised", b"\x00not json")
    bus.publish("citybase.iot.alarm.raised", {"alarm_type": "alien_landing", "lon": b.lon, "lat": b.lat})
    bus.publish("citybase.iot.alarm.raised", {"alarm_type": "smoke_detected", "lon": "east", "lat": b.lat})
    bus.publish("citybase.iot.alarm.raised", {"alarm_type": "smoke_detected", "lon": 116.4, "lat": 39.9})
    bus.publish("citybase.iot.alarm.raised", {"alarm_type": "smoke_detected", "lon": b.lon, "lat": b.lat,
                                         "device_id": "SD-ok"})
    for _ in range(3):
        consumer.run_once(timeout=0.3)
    reasons = [d.reason for d in bus.dead_letters()]
    assert len(reasons) == 4
    assert "malformed event" in reasons[0]
    assert "unknown alarm_type 'alien_landing'" in reasons[1]
    assert "lon/lat" in reasons[2]
    assert "outside every grid" in reasons[3]
    with Session(city.engine) as s:
        assert s.scalar(select(Incident).where(Incident.description.contains("SD-ok"))) is not None


class _Receiver(BaseHTTPRequestHandler):
    fail_first = 0
    got: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.got.append((self.headers["X-Citybase-Signature"], json.loads(body)))
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.got = []
    _Receiver.fail_first = 1
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


@pytest.fixture
def hook(city):
    """Subscribe a webhook for the test; deactivate it afterwards so other tests do not post to it."""
    from citybase.core.timeutil import utcnow

    sessions = make_sessionmaker(city.engine)
    made: list[int] = []

    def make(url: str, events: str, secret: str = "k") -> int:
        with sessions() as s:
            h = Webhook(department_id=None, url=url, secret=secret, events=events, active=True, created_at=utcnow())
            s.add(h)
            s.commit()
            made.append(h.id)
        workers.forget_webhooks()
        return made[-1]

    yield make
    with sessions() as s:
        for hook_id in made:
            s.get(Webhook, hook_id).active = False
        s.commit()
    workers.forget_webhooks()


def _log(city, hook_id):
    with Session(city.engine) as s:
        return list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id)
                              .order_by(WebhookDelivery.id)))


def test_webhooks_are_signed_retried_and_logged(city, bus, receiver, hook):
    import hashlib
    import hmac

    hook_id = hook(receiver, "citybase.ops.incident.dispatch", secret="s3cret")
    consumer = workers.webhook_consumer(bus, make_sessionmaker(city.engine))
    ev = bus.publish("citybase.ops.incident.dispatch", {"incident_id": 1, "code": "X", "main_department_id": 3})
    bus.publish("citybase.ops.incident.receive", {"incident_id": 1})  # not subscribed: not sent
    consumer.run_once(timeout=0.5)  # first try: the department system answers 503
    consumer.run_once(timeout=0.5)  # redelivered at once (nak): 204
    assert len(_Receiver.got) == 2
    sig, body = _Receiver.got[-1]
    raw = json.dumps({"id": ev.id, "subject": ev.subject, "time": ev.time, "data": ev.data,
                      "context": {"id": ev.context.id, "parent_id": ev.context.parent_id}},
                     ensure_ascii=False).encode()
    assert sig == "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert body["data"]["code"] == "X"
    assert [(d.attempt, d.status, d.response_code) for d in _log(city, hook_id)] == [(1, "failed", 503),
                                                                                     (2, "delivered", 204)]
    consumer.run_once(timeout=0.3)
    assert len(_Receiver.got) == 2  # delivered once, never again


def test_a_webhook_that_never_answers_is_given_up_and_dead_lettered(city, bus, hook):
    hook_id = hook("http://127.0.0.1:9/none", "citybase.ops.incident.close")
    consumer = workers.webhook_consumer(bus, make_sessionmaker(city.engine))
    bus.publish("citybase.ops.incident.close", {"incident_id": 2})
    for _ in range(5):
        consumer.run_once(timeout=0.2)
    assert [d.status for d in _log(city, hook_id)] == ["failed", "failed", "gave_up"]
    assert len(bus.dead_letters()) == 1 and "3 deliveries" in bus.dead_letters()[0].reason


def test_webhook_admin_api(client, city):
    admin = city.auth("admin")
    bad = client.post("/api/v1/ops/webhooks", json={"url": "ftp://x"}, headers=admin)
    assert bad.status_code == 422
    r = client.post("/api/v1/ops/webhooks", json={"url": "http://127.0.0.1:9/x", "events": "citybase.ops.>"},
                    headers=admin)
    assert r.status_code == 201 and r.json()["secret"]
    hooks = client.get("/api/v1/ops/webhooks", headers=admin).json()
    assert any(h["id"] == r.json()["id"] for h in hooks)
    assert client.get(f"/api/v1/ops/webhooks/{r.json()['id']}/deliveries", headers=admin).json() == []
    with Session(city.engine) as s:
        s.get(Webhook, r.json()["id"]).active = False
        s.commit()


def test_the_supervision_timer_runs_in_one_process_and_publishes_each_supervision(city, bus):
    from datetime import timedelta

    from sqlalchemy import update

    from citybase.core.timeutil import utcnow
    from citybase.ops.intake import service

    b = _building(city, 7)
    with Session(city.engine) as s:
        inc_id = service.intake(session=s, channel="api", description=f"井盖缺失 {uuid.uuid4().hex}",
                                category_code="02006", building_id=b.id).incident.id
        s.commit()
        s.execute(update(Incident).where(Incident.id == inc_id).values(deadline_at=utcnow() - timedelta(hours=1)))
        s.commit()
    sub = bus.subscribe("citybase.ops.incident.supervised", durable=f"sup-{uuid.uuid4().hex}")
    leader = workers.Supervisor(city.engine, bus, interval=30)
    other = workers.Supervisor(city.engine, bus, interval=30)
    try:
        assert leader.tick() is True
        assert other.tick() is False  # the lease is held: the other process's timer does not sweep
    finally:
        leader.stop()
        other.stop()
    assert leader.runs == 1 and other.runs == 0
    Relay(city.engine, bus).drain()  # the sweep's events went to the outbox; a relay publishes them
    assert any(d.event.data["incident_id"] == inc_id for d in sub.fetch(batch=100, timeout=0.5))
