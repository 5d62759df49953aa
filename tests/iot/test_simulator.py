"""The device simulator: deterministic, valid against the declared types, shaped like a day in the city, its
injected events crossing their rules and clearing, and its MQTT sender delivering to the real Mosquitto."""

from __future__ import annotations

import json
import queue
import statistics
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from citybase.iot.simulator import (
    BAD_KINDS,
    MIX,
    DeviceSpec,
    Fleet,
    HttpSender,
    MqttSender,
    NullSender,
    Progress,
    fake_token,
    load_specs,
    main,
    plan_devices,
    run,
)
from citybase.iot.types import DEVICE_TYPES, Rule

START = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # local midnight, 2 December (a Wednesday) in Shanghai
BBOX = (121.40, 31.12, 121.47, 31.22)


def specs(n: int = 400, seed: int = 7) -> list[DeviceSpec]:
    return [DeviceSpec(d.device_id, d.type_code, fake_token(d.device_id), d.lon, d.lat)
            for d in plan_devices(n, seed)]


def fewer_cheap(devices: list[DeviceSpec], keep: int = 20) -> list[DeviceSpec]:
    """The devices with only ``keep`` of each numerous cheap type: the stations matter for a day's shape, and
    three days of 200 parking spots are most of the work."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for d in devices:
        seen[d.type_code] += 1
        if d.type_code not in ("parking", "smoke", "light") or seen[d.type_code] <= keep:
            out.append(d)
    return out


def local_hour(t: str) -> int:
    return (datetime.fromisoformat(t).hour + 8) % 24


def refusal(type_code: str, msg: dict[str, Any], token: str, now: datetime) -> str | None:
    """What the ingest checks (docs/iot.md), written independently of the simulator: None when acceptable."""
    dtype = DEVICE_TYPES.get(type_code)
    if dtype is None:
        return "unknown_device"
    if msg.get("token") != token:
        return "wrong_token"
    if "t" not in msg:
        return "missing_time"
    t = datetime.fromisoformat(msg["t"])
    if t.tzinfo is None:
        return "no_offset"
    if t > now + timedelta(minutes=5):
        return "future_time"
    for name, value in msg["v"].items():
        a = dtype.attribute(name)
        if a is None:
            return "unknown_attribute"
        if a.values:
            if not isinstance(value, str):
                return "wrong_kind"
            if value not in a.values:
                return "bad_enum"
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "wrong_kind"
            if not a.min <= value <= a.max:
                return "out_of_range"
    return None


def rule(type_code: str, key: str) -> Rule:
    return next(r for r in DEVICE_TYPES[type_code].rules if r.key == key)


def alarms(readings: list[tuple[datetime, dict[str, Any]]], r: Rule) -> list[tuple[datetime, datetime | None]]:
    """A threshold rule worked over one device's readings as the rules describe it: the condition held for at
    least ``duration`` raises; the value back past ``clear`` clears. Returns (raised, cleared) episodes."""
    def holds(v: Any) -> bool:
        if r.equals:
            return v in r.equals
        return v > r.above if r.above is not None else v < r.below

    def cleared(v: Any) -> bool:
        if r.equals:
            return v not in r.equals
        clear = r.clear if r.clear is not None else (r.above if r.above is not None else r.below)
        return v < clear if r.above is not None else v > clear

    out: list[tuple[datetime, datetime | None]] = []
    since: datetime | None = None
    raised: datetime | None = None
    for t, v in readings:
        if r.attribute not in v:
            continue
        value = v[r.attribute]
        if raised is not None:
            if cleared(value):
                out.append((raised, t))
                raised = since = None
            continue
        if holds(value):
            since = since or t
            if (t - since).total_seconds() >= r.duration:
                raised = t
        else:
            since = None
    if raised is not None:
        out.append((raised, None))
    return out


def by_device(messages: list[tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[datetime, dict[str, Any]]]]:
    out: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
    for device, m in messages:
        out[device].append((datetime.fromisoformat(m["t"]), m["v"]))
    return out


# ------------------------------------------------------------------------------------------ planning


def test_plan_devices_has_the_district_mix_inside_its_box():
    plan = plan_devices(1000, 3)
    counts = {code: sum(d.type_code == code for d in plan) for code in MIX}
    assert len(plan) == 1000 and sum(counts.values()) == 1000
    assert counts["parking"] > counts["watermeter"] >= counts["light"] > counts["flood"] > counts["aq"] >= 1
    assert counts["watermeter"] > 100 and counts["smoke"] > 100
    assert len({d.device_id for d in plan}) == 1000
    assert all(d.device_id.startswith(f"{d.type_code}-310104-") for d in plan)
    assert all(BBOX[0] <= d.lon <= BBOX[2] and BBOX[1] <= d.lat <= BBOX[3] for d in plan)
    assert plan == plan_devices(1000, 3) and plan != plan_devices(1000, 4)
    assert {d.type_code for d in plan_devices(len(MIX), 1)} == set(MIX)  # every type once when N allows
    small = plan_devices(20, 1, district_code="310101", bbox=(121.0, 31.0, 121.1, 31.1))
    assert len(small) == 20 and all("-310101-" in d.device_id and 121.0 <= d.lon <= 121.1 for d in small)


def test_load_specs_reads_json_and_csv(tmp_path):
    rows = specs(5)
    (tmp_path / "a.json").write_text(json.dumps([{"id": s.device_id, "type": s.type_code, "token": s.token,
                                                  "lon": s.lon, "lat": s.lat} for s in rows]))
    (tmp_path / "b.csv").write_text("device_id,type_code,token,lon,lat\n"
                                    + "".join(f"{s.device_id},{s.type_code},{s.token},{s.lon},{s.lat}\n" for s in rows))
    (tmp_path / "c.json").write_text(json.dumps({"devices": [list(s) for s in rows]}))
    assert load_specs(tmp_path / "a.json") == load_specs(tmp_path / "b.csv") == load_specs(tmp_path / "c.json") == rows


# ------------------------------------------------------------------------------------------ the fleet


def test_a_seed_gives_the_same_messages_whatever_the_tick_size():
    devices = specs(200)
    a, b, c = (Fleet(devices, seed=5, start=START) for _ in range(3))
    end = START + timedelta(hours=6)
    coarse = a.tick(end)
    fine: list = []
    t = START
    while t < end:
        t = min(t + timedelta(seconds=37), end)
        fine.extend(b.tick(t))
    assert coarse == fine == list(c.readings(end)) and len(coarse) > 1000
    assert coarse != Fleet(devices, seed=6, start=START).tick(end)
    assert a.now == end


def test_every_value_is_one_the_ingest_accepts_even_during_events():
    devices = specs(400)
    fleet = Fleet(devices, seed=1, start=START)
    tokens = {s.device_id: s.token for s in devices}
    types = {s.device_id: s.type_code for s in devices}
    first = {code: next(s.device_id for s in devices if s.type_code == code) for code in MIX}
    fleet.rain(None, START + timedelta(hours=3), minutes=90)
    fleet.air_spike(None, START + timedelta(hours=5), minutes=40, peak=900)
    fleet.tilt(first["manhole"], START + timedelta(hours=1), angle=170)
    fleet.silent_meter(first["watermeter"], START + timedelta(hours=2))
    fleet.smoke(first["smoke"], START + timedelta(hours=4))
    fleet.smoke(first["waste"], START + timedelta(hours=4))
    fleet.lamp_fault(first["light"], START + timedelta(hours=20))
    seen: dict[str, set[str]] = defaultdict(set)
    t, n = START, 0
    while t < START + timedelta(days=2):
        t += timedelta(minutes=10)
        for device, m in fleet.tick(t):
            assert refusal(types[device], m, tokens[device], t) is None, (device, m)
            assert m["t"].endswith("Z") and datetime.fromisoformat(m["t"]) <= t
            seen[types[device]].update(m["v"])
            n += 1
    assert n > 50000
    for code, dtype in DEVICE_TYPES.items():  # every type reports every attribute it declares
        assert seen[code] == {a.name for a in dtype.attributes}, code


def test_each_device_reports_at_its_types_interval_with_a_few_drop_outs():
    fleet = Fleet(specs(300), seed=2, start=START, dropout=0.02)
    got = by_device(fleet.tick(START + timedelta(days=1)))
    types = {s.device_id: s.type_code for s in fleet.devices}
    gaps: dict[str, list[float]] = defaultdict(list)
    expected = received = 0
    for device, rows in got.items():
        interval = DEVICE_TYPES[types[device]].interval
        times = [t for t, _ in rows]
        gaps[types[device]] += [(b - a).total_seconds() / interval for a, b in zip(times, times[1:], strict=False)]
        expected += 86400 / interval
        received += len(rows)
    for code, g in gaps.items():
        assert 0.97 <= statistics.median(g) <= 1.03, code
        assert max(g) < 2.1, code  # one report skipped at most: never taken for offline (three intervals)
    assert 0.96 < received / expected < 0.995


def test_the_day_has_its_rhythms():
    fleet = Fleet(fewer_cheap(specs(600)), seed=3, start=START)
    types = {s.device_id: s.type_code for s in fleet.devices}
    at: dict[tuple[str, str, int], list[Any]] = defaultdict(list)
    for device, m in fleet.tick(START + timedelta(days=3)):  # Wednesday to Friday, local time
        for name, value in m["v"].items():
            at[types[device], name, local_hour(m["t"])].append(value)

    def mean(code: str, name: str, *hours: int) -> float:
        return statistics.mean(v for h in hours for v in at[code, name, h])

    assert mean("traffic", "averageVehicleSpeed", 8) < 0.6 * mean("traffic", "averageVehicleSpeed", 3)
    assert mean("traffic", "intensity", 8) > 5 * mean("traffic", "intensity", 3)
    assert mean("traffic", "intensity", 18) > 4 * mean("traffic", "intensity", 3)
    assert mean("noise", "LAeq", 8) > mean("noise", "LAeq", 3) + 10
    assert mean("aq", "pm25", 7, 8) > mean("aq", "pm25", 15, 16) * 1.2
    assert mean("aq", "pm25", 0, 1) > mean("aq", "pm25", 15, 16)
    assert mean("aq", "o3", 14) > 2 * mean("aq", "o3", 3)
    night = mean("watermeter", "flow", 1, 2, 3, 4)
    assert night < 0.002 and mean("watermeter", "flow", 7, 8) > 10 * night
    assert mean("watermeter", "flow", 18, 19, 20) > 5 * night
    assert mean("watermeter", "flow", 7, 8) > mean("watermeter", "flow", 14, 15)
    occupied = {h: statistics.mean(v == "occupied" for v in at["parking", "status", h]) for h in range(24)}
    assert 0.3 < min(occupied.values()) and max(occupied.values()) < 0.95
    assert set(at["light", "powerState", 12]) == {"off"} and "off" not in at["light", "powerState", 20]
    assert set(at["light", "powerState", 2]) == {"low"}  # dimmed after 23:00


def test_without_events_no_event_rule_fires():
    """Over three days of normal life no flood, dust, cover, silent-meter or smoke alarm: each alarm the demo
    shows was injected on purpose."""
    fleet = Fleet(fewer_cheap(specs(600)), seed=4, start=START)
    types = {s.device_id: s.type_code for s in fleet.devices}
    got = by_device(fleet.tick(START + timedelta(days=3)))
    for code, key in (("flood", "level_high"), ("aq", "pm10_high"), ("manhole", "tilted"),
                      ("watermeter", "no_use"), ("smoke", "smoke"), ("waste", "hot"), ("light", "lamp_fault"),
                      ("hydrant", "pressure_low"), ("noise", "laeq_high")):
        for device, rows in got.items():
            if types[device] == code:
                assert alarms(rows, rule(code, key)) == [], (device, key)


# ------------------------------------------------------------------------------------------ events


def crossed_and_cleared(fleet: Fleet, event, code: str, key: str, until: datetime) -> None:
    types = {s.device_id: s.type_code for s in fleet.devices}
    got = by_device(fleet.tick(until))
    r = rule(code, key)
    targets = [d for d in event.devices if types[d] == code]
    assert targets
    for device in targets:
        [(raised, cleared)] = alarms(got[device], r)
        assert event.start <= raised < event.end, device
        assert cleared is not None and cleared <= event.clear_by, device
        # the condition held from its first reading for longer than the rule asks
        first = next(t for t, v in got[device] if t >= event.start and r.attribute in v
                     and (v[r.attribute] in r.equals if r.equals else
                          v[r.attribute] > r.above if r.above is not None else v[r.attribute] < r.below))
        assert (raised - first).total_seconds() >= r.duration


@pytest.mark.parametrize("minutes", [5, 30, 120])
def test_rain_floods_the_points_of_its_area_past_the_limit_then_they_drain(minutes):
    fleet = Fleet(specs(600), seed=5, start=START)
    west = (121.40, 31.12, 121.435, 31.22)
    event = fleet.rain(west, START + timedelta(hours=2), minutes=minutes)
    inside = {s.device_id for s in fleet.devices if s.type_code == "flood" and s.lon <= 121.435}
    assert set(d for d in event.devices if d.startswith("flood")) == inside and inside
    crossed_and_cleared(fleet, event, "flood", "level_high", START + timedelta(hours=8))


def test_rain_elsewhere_leaves_the_other_points_dry():
    fleet = Fleet(specs(600), seed=5, start=START)
    fleet.rain((121.40, 31.12, 121.435, 31.22), START + timedelta(hours=2), minutes=60)
    got = by_device(fleet.tick(START + timedelta(hours=8)))
    for s in fleet.devices:
        if s.type_code == "flood" and s.lon > 121.435:
            assert max(v["currentLevel"] for _, v in got[s.device_id]) < 0.05


def test_an_air_spike_crosses_the_dust_rule_for_longer_than_ten_minutes():
    fleet = Fleet(specs(1000), seed=6, start=START)
    event = fleet.air_spike(None, START + timedelta(hours=9, minutes=3), minutes=30)
    crossed_and_cleared(fleet, event, "aq", "pm10_high", START + timedelta(hours=12))


def test_a_tilted_cover_reports_at_once_and_again_when_put_back():
    fleet = Fleet(specs(300), seed=7, start=START)
    fleet.tick(START + timedelta(hours=1))
    cover = next(s.device_id for s in fleet.devices if s.type_code == "manhole")
    event = fleet.tilt(cover, minutes=20)
    assert event.start == START + timedelta(hours=1)
    [(device, m)] = [x for x in fleet.tick(event.start) if x[0] == cover]
    assert m["v"]["tiltAngle"] > 15 and m["t"] == event.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    fleet2 = Fleet(specs(300), seed=7, start=START)
    event2 = fleet2.tilt(cover, START + timedelta(hours=1), minutes=20)
    crossed_and_cleared(fleet2, event2, "manhole", "tilted", START + timedelta(hours=3))


def test_a_silent_meter_shows_no_use_for_more_than_twelve_hours_then_use_again():
    fleet = Fleet(specs(300), seed=8, start=START)
    meter = next(s.device_id for s in fleet.devices if s.type_code == "watermeter")
    event = fleet.silent_meter(meter, START + timedelta(hours=9))
    crossed_and_cleared(fleet, event, "watermeter", "no_use", START + timedelta(days=1, hours=2))


def test_smoke_and_lamp_faults_raise_and_clear():
    fleet = Fleet(specs(300), seed=9, start=START)
    smoke = next(s.device_id for s in fleet.devices if s.type_code == "smoke")
    lamp = next(s.device_id for s in fleet.devices if s.type_code == "light")
    bin_ = next(s.device_id for s in fleet.devices if s.type_code == "waste")
    e1 = fleet.smoke(smoke, START + timedelta(hours=1))
    e2 = fleet.lamp_fault(lamp, START + timedelta(hours=1))
    e3 = fleet.smoke(bin_, START + timedelta(hours=1))
    got = fleet.tick(START + timedelta(hours=4))
    for event, code, key in ((e1, "smoke", "smoke"), (e2, "light", "lamp_fault"), (e3, "waste", "hot")):
        rows = by_device([x for x in got if x[0] == event.devices[0]])[event.devices[0]]
        r = rule(code, key)
        [(raised, cleared)] = alarms(rows, r)
        assert event.start + timedelta(seconds=r.duration) <= raised <= event.start + timedelta(seconds=r.duration + 60)
        assert cleared is not None and cleared <= event.clear_by


def test_an_event_needs_a_device_of_a_fitting_type():
    fleet = Fleet(specs(100), seed=1, start=START)
    parking = next(s.device_id for s in fleet.devices if s.type_code == "parking")
    with pytest.raises(ValueError):
        fleet.tilt(parking)
    with pytest.raises(KeyError):
        fleet.tilt("manhole-310104-999999")


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_readings_are_ones_the_ingest_refuses_for_that_reason(kind):
    devices = specs(100)
    fleet = Fleet(devices, seed=1, start=START)
    for code in ("flood", "parking", "light"):
        if (kind == "out_of_range" and code == "parking") or (kind == "bad_enum" and code == "flood"):
            continue  # a parking spot has no number, a flood point no state
        s = next(s for s in devices if s.type_code == code)
        target, msg = fleet.bad(s.device_id, kind, START + timedelta(minutes=1))
        got = [x for x in fleet.tick(START + timedelta(minutes=2)) if x[0] == target and x[1] == msg]
        assert len(got) == 1
        type_code = s.type_code if target == s.device_id else None
        assert refusal(type_code or "ghost", msg, s.token, START + timedelta(minutes=2)) == kind, (code, msg)


# ------------------------------------------------------------------------------------------ running and senders


def test_run_in_real_time_never_sends_readings_from_the_future():
    """A fleet started an hour ago at 3600× replays the hour, then stops at the wall clock (``until``)."""
    now = datetime.now(UTC).replace(microsecond=0)
    fleet = Fleet(specs(100), seed=1, start=now - timedelta(hours=1), time_scale=3600)

    class Keep(NullSender):
        def __init__(self) -> None:
            super().__init__()
            self.got: list = []

        def send(self, device_id, message):
            super().send(device_id, message)
            self.got.append((device_id, message))

    sender = Keep()
    seen: list[Progress] = []
    end = datetime.now(UTC)
    result = run(fleet, sender, progress=seen.append, until=end, duration=120)
    assert result.done and result.sent == sender.sent == len(sender.got) > 100 and seen[-1] == result
    assert max(datetime.fromisoformat(m["t"]) for _, m in sender.got) <= datetime.now(UTC)
    assert fleet.now == end


def test_run_as_fast_as_possible_stops_at_until_or_at_the_stop_event():
    fleet = Fleet(specs(200), seed=1, start=START)
    sender = NullSender()
    result = run(fleet, sender, realtime=False, until=START + timedelta(hours=2))
    assert result.sent == sender.sent == len(Fleet(specs(200), seed=1, start=START).tick(START + timedelta(hours=2)))
    stop = threading.Event()
    stop.set()
    assert run(Fleet(specs(200), seed=1, start=START), NullSender(), stop_event=stop, realtime=False).sent <= 256


def test_mqtt_sender_delivers_every_message_to_mosquitto():
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from tests.conftest import unavailable

    prefix = f"citybase-test/{uuid.uuid4().hex}"
    got: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    # MQTT 5 with a large Receive Maximum: a 3.1.1 subscriber gets 20 messages in flight and 1000 queued from a
    # default Mosquitto, which drops the rest when the publisher is faster than the subscriber
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_subscribe = lambda *a: subscribed.set()
    listener.on_message = lambda _c, _u, msg: got.put((msg.topic, msg.payload, msg.qos))
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 65535
    try:
        listener.connect("127.0.0.1", 1883, properties=props)
    except OSError as exc:
        unavailable(f"Mosquitto at 127.0.0.1:1883: {exc}")
    listener.loop_start()
    try:
        listener.subscribe(f"{prefix}/+/up", qos=1)
        assert subscribed.wait(10)
        fleet = Fleet(specs(300), seed=1, start=START)
        expected = Fleet(specs(300), seed=1, start=START).tick(START + timedelta(hours=1))
        sender = MqttSender("mqtt://127.0.0.1:1883", prefix, max_pending=200)
        result = run(fleet, sender, realtime=False, until=START + timedelta(hours=1))
        assert sender.flush(30) and sender.acked == sender.sent == result.sent == len(expected) > 2000
        sender.close()
        received = []
        while len(received) < len(expected):
            received.append(got.get(timeout=30))
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert sorted((f"{prefix}/{d}/up", json.dumps(m, sort_keys=True)) for d, m in expected) == \
        sorted((topic, json.dumps(json.loads(payload), sort_keys=True)) for topic, payload, _ in received)
    assert {qos for *_, qos in received} == {1}


def test_mqtt_sender_says_when_no_broker_answers():
    from tests.servers import free_port

    with pytest.raises(OSError):
        MqttSender(f"mqtt://127.0.0.1:{free_port()}", connect_timeout=2)


class _Readings(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv: Any = self.server
        srv.batches.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps([{"ok": True}] * len(body)).encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_http_sender_posts_batches_of_messages_with_their_device():
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Readings)
    server.batches = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fleet = Fleet(specs(100), seed=1, start=START)
        expected = Fleet(specs(100), seed=1, start=START).tick(START + timedelta(minutes=30))
        answers: list = []
        with HttpSender(f"http://127.0.0.1:{server.server_port}/", batch_size=50,
                        on_answer=lambda batch, r: answers.append(r.status_code)) as sender:
            run(fleet, sender, realtime=False, until=START + timedelta(minutes=30))
    finally:
        server.shutdown()
    assert {path for path, _ in server.batches} == {"/api/v1/iot/readings"}
    assert all(len(b) == 50 for _, b in server.batches[:-1]) and 0 < len(server.batches[-1][1]) <= 50
    assert [(m.pop("device"), m) for _, b in server.batches for m in b] == expected
    assert sender.sent == len(expected) and sender.failed == 0 and set(answers) == {200}


def test_the_command_line_runs_a_dry_fleet(capsys):
    assert main(["--dry-run", "--devices", "50", "--fast", "--backfill", "1"]) == 0
    assert "50 devices" in capsys.readouterr().err


def test_citybase_simulate_publishes_a_replayed_hour_to_mosquitto():
    import socket

    import typer
    from typer.testing import CliRunner

    from citybase.iot.simulate_cli import simulate
    from tests.conftest import unavailable

    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError as exc:
        unavailable(f"Mosquitto at 127.0.0.1:1883: {exc}")
    app = typer.Typer()
    app.command("simulate")(simulate)
    app.command("other")(lambda: None)  # two commands, so "simulate" is named as under citybase
    prefix = f"citybase-test/{uuid.uuid4().hex}"
    result = CliRunner().invoke(app, ["simulate", "--devices", "50", "--mqtt", "mqtt://127.0.0.1:1883",
                                      "--topic-prefix", prefix, "--fast", "--backfill", "1"])
    assert result.exit_code == 0, result.output
    assert "50 devices" in result.output and " sent " in result.output
    assert CliRunner().invoke(app, ["simulate", "--devices", "5"]).exit_code != 0  # no --mqtt nor --http
