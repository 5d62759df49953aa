"""The ingest workers: the bridge's messages on the bus handled in batches, once each.

Embedded: the in-process bus and one batch consumer. Deployed: PostgreSQL + NATS JetStream with two
`citybase worker` processes sharing the one durable consumer; one is killed (SIGKILL) in the middle of the
stream and a third takes over: every datapoint is stored exactly once, in the readings and in the twin's
history. Every wait is bounded; nothing asserts how long anything took."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from citybase.bus import Context, Event
from citybase.bus.memory import InProcessBus
from citybase.iot import service, workers
from citybase.iot.bridge import ingest_event
from citybase.iot.events import INGEST
from citybase.iot.models import DeadLetter, Reading
from citybase.kernel.consumers import BatchConsumer
from citybase.storage.db import make_sessionmaker
from tests.bus.conftest import NATS_URL
from tests.conftest import new_database, unavailable
from tests.test_processes import _cli, _env, _process, _until

T0 = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def _provision(sessions, n: int, prefix: str) -> list[tuple[str, str]]:
    with sessions() as s:
        made = service.provision(session=s, devices=[service.NewDevice(
            device_id=f"{prefix}-{i:05d}", type_code="flood", lon=121.437 + i * 1e-5, lat=31.188) for i in range(n)])
        s.commit()
    return [(d.device_id, secret) for d, secret in made]


def _event(device: str, payload: dict | str) -> Event:
    """One message as its own event: the form before the bridge grouped them (still read)."""
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    topic = f"citybase/iot/{device}/up"
    return Event(subject=INGEST, data={"device": device, "payload": raw, "via": "mqtt",
                                       "received_at": datetime.now(UTC).isoformat()},
                 context=Context(), id=hashlib.sha256(f"{topic}\n{raw}".encode()).hexdigest()[:32])


def _group(messages: list[tuple[str | None, dict | str | bytes]], topic: str | None = None) -> Event:
    """Messages (device, payload) as the bridge carries them: one event for the group."""
    now = datetime.now(UTC).isoformat()
    return ingest_event([(topic or f"citybase/iot/{dev}/up", p if isinstance(p, bytes) else
                          (p if isinstance(p, str) else json.dumps(p)).encode(), now) for dev, p in messages])


def _payloads(devices: list[tuple[str, str]], per_device: int, readings: int = 5) -> list[tuple[str, dict]]:
    out = []
    for k in range(per_device):
        for dev, secret in devices:
            out.append((dev, {"token": secret, "readings": [
                {"t": (T0 + timedelta(minutes=k * readings + j)).isoformat(), "v": {"currentLevel": 0.01 * (j + 1)}}
                for j in range(readings)]}))
    return out


def _messages(devices: list[tuple[str, str]], per_device: int, readings: int = 5, per_event: int = 50) -> list[Event]:
    ps = _payloads(devices, per_device, readings)
    return [_group(ps[i:i + per_event]) for i in range(0, len(ps), per_event)]


def _readings(engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(Reading)))


def _dead(engine) -> list[tuple[str | None, str, str]]:
    with Session(engine) as s:
        return sorted(s.execute(select(DeadLetter.device_id, DeadLetter.reason_code, DeadLetter.reason)).all(),
                      key=lambda r: (r[1], r[0] or ""))


def _ingest_consumer(bus: InProcessBus, sessions, batch: int = 4) -> BatchConsumer:  # noqa: ANN001
    """``iot-ingest`` as the runtime runs it, on this bus."""
    return BatchConsumer("iot-ingest", bus, INGEST, sessions, lambda s, ds: workers.ingest(s, ds, None), batch=batch)


def _drain(consumer: BatchConsumer) -> None:
    while consumer.run_once(timeout=0.1):
        pass


@pytest.fixture
def small_city(request, tmp_path):
    from citybase.demo.generator import generate
    from citybase.geo.service import reset_caches
    from citybase.storage.migrate import upgrade

    db = new_database(request.param, tmp_path)
    upgrade(db.engine)
    generate(db.engine, size="small", seed=7)
    reset_caches()
    service.DIRECTORY.forget()
    yield db
    db.engine.dispose()
    if db.drop:
        db.drop()


ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("small_city", ENGINES, indirect=True)
def test_the_ingest_consumer_takes_batches_and_a_redelivery_changes_nothing(small_city):
    sessions = make_sessionmaker(small_city.engine)
    devices = _provision(sessions, 20, f"w{uuid.uuid4().hex[:6]}")
    bus = InProcessBus()
    consumer = _ingest_consumer(bus, sessions, batch=2)
    events = _messages(devices, 3, per_event=7)  # 60 messages in 9 groups
    # two events of the form before groups (one message each), as a stream may still hold after an upgrade
    events.append(_event(devices[0][0], "not json at all"))
    events.append(_event(devices[1][0], {"device": devices[2][0], "token": devices[2][1], "t": T0.isoformat(),
                                         "v": {"currentLevel": 0.1}}))
    for e in events:
        bus.publish_event(e)
    _drain(consumer)
    history = _history(small_city.engine)
    for e in [*events[:4], *events[-2:]]:  # published again after a crash, in other events: still stored once
        bus.publish_event(Event(subject=e.subject, data=e.data, context=Context()))
    bus.publish_event(_group([(d, p) for d, p in _payloads(devices, 1)][::-1]))
    _drain(consumer)
    assert _readings(small_city.engine) == 20 * 3 * 5
    assert _history(small_city.engine) == history == 20 * 3 * 5  # the copies wrote no history either
    assert [code for _, code, _ in _dead(small_city.engine)] == ["not_json", "wrong_device"]  # kept once each
    assert consumer.batches >= 5 and not bus.dead_letters()


def _history(engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(text("SELECT count(*) FROM twin_history WHERE attr LIKE '%currentLevel'")))


@pytest.mark.parametrize("small_city", ENGINES, indirect=True)
def test_a_group_with_bad_messages_stores_the_others_and_keeps_each_bad_one_with_its_reason(small_city):
    sessions = make_sessionmaker(small_city.engine)
    (good, secret), (other, other_secret) = _provision(sessions, 2, f"g{uuid.uuid4().hex[:6]}")
    bus = InProcessBus()
    consumer = _ingest_consumer(bus, sessions)
    t = T0.isoformat()
    bus.publish_event(_group([
        (good, {"token": secret, "t": t, "v": {"currentLevel": 0.1}}),
        (other, {"token": "wrong", "t": t, "v": {"currentLevel": 0.1}}),
        (good, '{"token": "x", "t": "' + t + '", "v": {"currentLevel": ' + "9" * 5000 + '}}'),  # too long an int
        (other, {"token": other_secret, "readings": [{"t": t, "v": {"currentLevel": 99}},
                                                      {"t": (T0 + timedelta(minutes=1)).isoformat(),
                                                       "v": {"currentLevel": 0.2}}]}),
        (good, b"\xff\xfe not utf-8"),
        (good, {"token": secret, "t": (T0 + timedelta(minutes=1)).isoformat(), "v": {"currentLevel": 0.3}}),
    ]))
    bus.publish_event(_group([("bad id!", {"token": secret})], topic="citybase/iot/bad id!/up"))
    _drain(consumer)
    assert _readings(small_city.engine) == 3  # good at T0 and T0+1, other at T0+1
    dead = _dead(small_city.engine)
    assert sorted((code, d) for d, code, _ in dead) == sorted([
        ("bad_token", other), ("unknown_device", "bad id!"), ("not_json", good), ("not_utf8", good),
        ("out_of_range", other)])
    assert all(json.loads(reason)["msg"] for *_, reason in dead)  # each says why
    assert not bus.dead_letters()


@pytest.mark.parametrize("small_city", ENGINES, indirect=True)
def test_a_malformed_group_event_is_kept_aside_with_its_reason_and_never_comes_again(small_city):
    sessions = make_sessionmaker(small_city.engine)
    (dev, secret), = _provision(sessions, 1, f"m{uuid.uuid4().hex[:6]}")
    bus = InProcessBus()
    consumer = _ingest_consumer(bus, sessions)
    for data in ({"via": "mqtt", "messages": "not a list"}, {"via": "mqtt", "messages": []},
                 {"via": "mqtt", "messages": [42, {"device": 7, "payload": ["x"]}]}):
        bus.publish(INGEST, data)
    bus.publish_raw(INGEST, b"not an envelope")
    bus.publish_event(_group([(dev, {"token": secret, "t": T0.isoformat(), "v": {"currentLevel": 0.1}})]))
    _drain(consumer)
    assert consumer.run_once(timeout=0.2) == 0  # nothing comes again
    assert _readings(small_city.engine) == 1
    assert [code for _, code, _ in _dead(small_city.engine)] == ["bad_event"] * 3 + ["not_json"]
    assert [d.reason.split(":")[0] for d in bus.dead_letters()] == ["malformed event"]  # not an envelope at all


@pytest.mark.parametrize("small_city", ENGINES, indirect=True)
def test_a_message_too_large_for_the_bus_is_kept_aside_with_its_first_bytes_and_the_rest_is_stored(small_city):
    from citybase.iot.bridge import MAX_PAYLOAD, PREVIEW

    sessions = make_sessionmaker(small_city.engine)
    (dev, secret), = _provision(sessions, 1, f"b{uuid.uuid4().hex[:6]}")
    bus = InProcessBus()
    consumer = _ingest_consumer(bus, sessions)
    huge = {"token": secret, "t": T0.isoformat(), "v": {"currentLevel": 0.1}, "pad": "水" * MAX_PAYLOAD}
    group = _group([(dev, json.dumps(huge, ensure_ascii=False)),
                    (dev, {"token": secret, "t": T0.isoformat(), "v": {"currentLevel": 0.2}})])
    assert len(group.encode()) < PREVIEW * 2  # what the bus carries: the first bytes, not 384 KB
    bus.publish_event(group)
    _drain(consumer)
    assert _readings(small_city.engine) == 1
    with Session(small_city.engine) as s:
        [d] = s.scalars(select(DeadLetter)).all()
    assert (d.device_id, d.reason_code) == (dev, "too_large")
    assert json.loads(d.reason)["msg"].startswith("the message has") and "131,072" in d.reason
    assert d.payload.startswith('{"token": "***"') and secret not in d.payload  # its first bytes, the secret not
    assert "水" in d.payload and len(d.payload.encode()) <= PREVIEW and not bus.dead_letters()


@pytest.mark.parametrize("small_city", ENGINES, indirect=True)
def test_a_message_the_ingest_fails_on_costs_only_itself_the_rest_of_its_group_is_stored(small_city):
    """A device whose type this version no longer declares (removed by an upgrade) makes the ingest raise:
    the batch fails, the group fails alone and comes again, then its messages are handled one by one."""
    sessions = make_sessionmaker(small_city.engine)
    (ok, secret), (gone, gone_secret) = _provision(sessions, 2, f"f{uuid.uuid4().hex[:6]}")
    with sessions() as s:
        s.execute(text("UPDATE iot_devices SET type_code = 'retired' WHERE device_id = :d"), {"d": gone})
        s.commit()
    service.DIRECTORY.forget()
    bus = InProcessBus()
    consumer = _ingest_consumer(bus, sessions)
    ps = [(ok, {"token": secret, "t": (T0 + timedelta(minutes=i)).isoformat(), "v": {"currentLevel": 0.1}})
          for i in range(5)]
    bus.publish_event(_group([*ps[:2], (gone, {"token": gone_secret, "t": T0.isoformat(), "v": {"currentLevel": 1}}),
                              *ps[2:4]]))
    bus.publish_event(_group(ps[4:]))
    _drain(consumer)
    assert _readings(small_city.engine) == 5
    dead = _dead(small_city.engine)
    assert [(d, code) for d, code, _ in dead] == [(gone, "ingest_failed")]
    assert "KeyError" in json.loads(dead[0][2])["params"]["error"]
    assert not bus.dead_letters()


def test_two_worker_processes_share_the_stream_and_a_killed_one_loses_and_duplicates_nothing(tmp_path):
    from citybase.bus.nats import NatsBus

    if not os.environ.get("CITYBASE_TEST_POSTGRES_URL") or not os.environ.get("CITYBASE_TEST_NATS_URL"):
        unavailable("set CITYBASE_TEST_POSTGRES_URL and CITYBASE_TEST_NATS_URL to run the workers on PostgreSQL + NATS")
    db = new_database("postgresql", tmp_path)
    bus_url = f"{NATS_URL}?deployment=i{uuid.uuid4().hex[:12]}"
    try:
        bus = NatsBus(bus_url)
    except ConnectionError as exc:
        unavailable(f"NATS JetStream not available: {exc}")
    data_dir, metrics_dir = tmp_path / "data", tmp_path / "metrics"
    metrics_dir.mkdir()
    env = _env(db.url, bus_url, data_dir, metrics_dir)
    try:
        _cli(env, "generate", "--size", "small")
        sessions = make_sessionmaker(db.engine)
        service.DIRECTORY.forget()
        devices = _provision(sessions, 200, "k")
        events = _messages(devices, 20)  # 4,000 messages in groups of 50, 20,000 datapoints
        expected = len(devices) * 20 * 5

        def stored() -> int:
            with Session(db.engine) as s:
                return int(s.scalar(select(func.count()).select_from(Reading)))

        logs = [tmp_path / f"worker{i}.log" for i in range(3)]
        with _process(env, logs[0], "worker") as w0, _process(env, logs[1], "worker") as w1:
            for log, w in ((logs[0], w0), (logs[1], w1)):
                _until("a worker to start", lambda log=log, w=w: "citybase worker:" in log.read_text()
                       or (w.poll() is not None and pytest.fail(log.read_text())))
            bus.publish_events(events)
            _until("the workers to store a part", lambda: stored() > expected // 5, within=300)
            os.killpg(w0.pid, signal.SIGKILL)  # mid-stream: its unacked batch comes back to the others
            w0.wait()
            with _process(env, logs[2], "worker"):
                _until("every datapoint stored", lambda: stored() >= expected, within=600)
                time.sleep(2)  # a redelivered batch, if any, would land now
        with Session(db.engine) as s:
            assert stored() == expected
            per_key = s.execute(text(
                "SELECT entity_id, attr, observed_at, count(*) FROM twin_history "
                "WHERE entity_id LIKE 'urn:ngsi-ld:FloodMonitoring:k-%' AND attr LIKE '%currentLevel' "
                "GROUP BY entity_id, attr, observed_at HAVING count(*) > 1")).all()
            assert per_key == []
            in_history = s.scalar(text("SELECT count(*) FROM twin_history WHERE entity_id LIKE "
                                       "'urn:ngsi-ld:FloodMonitoring:k-%' AND attr LIKE '%currentLevel'"))
            assert in_history == expected
    finally:
        try:
            bus.delete_streams()
        finally:
            bus.close()
            db.engine.dispose()
            if db.drop:
                db.drop()


@pytest.mark.parametrize("small_city", ["sqlite"], indirect=True)
def test_the_raw_readings_insert_queues_with_the_other_writers_of_the_process(small_city):
    """The readings are written through the DBAPI cursor; on SQLite that write takes the process's writer lock
    first, or it holds SQLite's lock while the rest of its transaction queues behind a writer waiting for
    SQLite (both then time out)."""
    import threading as th

    from citybase.iot.repository import IotRepository
    from citybase.kernel.models import ProcessedEvent

    sessions = make_sessionmaker(small_city.engine, writer_wait=3.0)
    (dev, _), = _provision(sessions, 1, f"lock{uuid.uuid4().hex[:4]}")
    with sessions() as s:
        pk = service.get_device(session=s, device_id=dev).id
    first, errors = sessions(), []
    IotRepository(first).insert_readings([(pk, "currentLevel", T0, 0.1, None, T0)])
    started = th.Event()

    def other_writer() -> None:  # the relay, a timer, another consumer: an ORM write of its own
        try:
            with sessions() as s:
                started.set()
                s.add(ProcessedEvent(consumer="t", event_id=uuid.uuid4().hex, processed_at=T0))
                s.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = th.Thread(target=other_writer)
    t.start()
    started.wait(5)
    time.sleep(0.3)  # the other writer is queued now
    try:
        IotRepository(first).touch_devices({pk: T0})  # the same transaction's next write, through the ORM
        first.commit()
    finally:
        first.close()
    t.join(10)
    assert errors == []
    with Session(small_city.engine) as s:
        assert s.scalar(select(func.count()).select_from(Reading)) == 1
