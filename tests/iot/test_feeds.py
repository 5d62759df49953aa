"""前端分流: a department's feed receives its own devices' readings (of its type, in its area) and nothing else,
as a signed webhook posted by the `iot-feeds` consumer, or on its own bus subject; bulk provisioning from a
file; the elderly water meter's 12 hours without use."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

from citybase.iot import service, workers
from citybase.kernel import webhooks
from citybase.kernel.consumers import Consumer
from citybase.storage.db import make_sessionmaker
from tests.iot.test_ingest import LAT, LON, T0, iso, provision, send


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((self.headers.get("X-Citybase-Signature", ""), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_feed_gets_only_its_departments_readings_signed(client, city):
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.got = []
    name = f"swj-{uuid.uuid4().hex[:6]}"
    r = client.post("/api/v1/iot/feeds", headers=city.auth("admin"), json={
        "name": name, "department": "水务局", "type": "flood", "url": f"http://127.0.0.1:{server.server_port}/in"})
    assert r.status_code == 201, r.text
    feed = r.json()
    assert feed["secret"] and feed["subject"] == f"citybase.iot.feed.{name}"
    bus_feed = client.post("/api/v1/iot/feeds", headers=city.auth("admin"), json={"name": f"{name}-bus", "type": "noise"})
    assert bus_feed.status_code == 201 and bus_feed.json()["url"] is None
    assert client.post("/api/v1/iot/feeds", headers=city.auth("dispatcher"), json={"name": "x"}).status_code == 403
    assert client.post("/api/v1/iot/feeds", headers=city.auth("admin"), json={"name": "Bad Name"}).status_code == 422
    service.FEEDS.forget()  # what the cache listener does in a running process when a feed is made
    sessions = make_sessionmaker(city.engine)
    consumer = Consumer("iot-feeds-test", client.app.state.bus, "citybase.iot.feed.*", sessions,
                        lambda s, d: workers.feed(s, d, type("R", (), {"bus": client.app.state.bus})()))
    department_system = client.app.state.bus.subscribe(f"citybase.iot.feed.{name}-bus", durable=f"d-{name}")
    (flood, fs), = provision(client, city, "flood")
    (noise, ns), = provision(client, city, "noise")
    send(client, {"device": flood, "token": fs, "t": iso(T0), "v": {"currentLevel": 0.05}},
         {"device": noise, "token": ns, "t": iso(T0), "v": {"LAeq": 55}})
    while consumer.run_once(timeout=0.2):
        pass
    server.shutdown()
    on_bus = [x for d in department_system.fetch(batch=50, timeout=0.5) for x in d.event.data["readings"]]
    assert [(x["device"], x["v"]) for x in on_bus] == [(noise, 55)]
    posted = [json.loads(body) for _, body in _Receiver.got]
    readings = [x for p in posted if p["subject"] == f"citybase.iot.feed.{name}" for x in p["data"]["readings"]]
    assert [(x["device"], x["attr"], x["v"]) for x in readings] == [(flood, "currentLevel", 0.05)]
    sig, body = next((s, b) for s, b in _Receiver.got if json.loads(b)["subject"].endswith(name))
    assert webhooks.verify(feed["secret"], body, sig)
    assert client.delete(f"/api/v1/iot/feeds/{feed['id']}", headers=city.auth("admin")).status_code == 204
    listed = client.get("/api/v1/iot/feeds", headers=city.auth("admin")).json()
    assert all(f["name"] != name for f in listed) and any(f["name"] == f"{name}-bus" for f in listed)


def test_an_elderly_persons_meter_without_use_for_twelve_hours_raises_an_alarm(client, city):
    (dev, secret), = provision(client, city, "watermeter")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=14)
    raised = []
    for h in range(14):  # a morning's use, then nothing at all
        flow = 0.05 if h == 0 else 0.0
        out = send(client, {"device": dev, "token": secret, "t": iso(start + timedelta(hours=h)), "v": {"flow": flow}})
        raised += [(h, a) for a in out.json()["alarms_raised"]]
    assert [h for h, _ in raised] == [13]  # silent from hour 1: 12 hours later, once
    a = client.get(f"/api/v1/iot/alarms/{raised[0][1]}", headers={**city.auth("dispatcher"), "Accept-Language": "zh"})
    assert a.json()["alarm_type"] == "water_meter_silent" and a.json()["rule_title"] == "独居老人12小时未用水"
    # a role without personal data sees the home to about 100 m only; the data officer exactly
    exact = client.get(f"/api/v1/iot/devices/{dev}", headers=city.auth("dataofficer")).json()["device"]
    coarse = client.get(f"/api/v1/iot/devices/{dev}", headers=city.auth("dispatcher")).json()["device"]
    assert (exact["lon"], exact["lat"]) == (LON, LAT) and (coarse["lon"], coarse["lat"]) == (round(LON, 3), round(LAT, 3))


def test_devices_are_provisioned_in_bulk_from_a_csv(tmp_path, city):
    import os
    import subprocess
    import sys

    from tests.servers import SRC

    ids = [f"cli-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    f = tmp_path / "devices.csv"
    f.write_text("device_id,type,lon,lat,name\n" + "".join(f"{i},smoke,{LON},{LAT},烟感{i}\n" for i in ids), encoding="utf-8")
    out = tmp_path / "secrets.csv"
    env = {**os.environ, "PYTHONPATH": str(SRC), "CITYBASE_DATABASE_URL": city.db.url, "CITYBASE_DATA_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "citybase.cli", "iot", "import", str(f), "--secrets", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 devices provisioned" in r.stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "device_id,secret" and sorted(ln.split(",")[0] for ln in lines[1:]) == sorted(ids)
    assert (out.stat().st_mode & 0o777) == 0o600
    again = subprocess.run([sys.executable, "-m", "citybase.cli", "iot", "import", str(f)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists already" in again.stderr
