"""The demo's 城域物联网: a few thousand simulated devices spread over the district (the simulator's mix),
provisioned once with secrets derived from a key of the data folder (so a restart knows them again), and a
living simulation: the fleet's readings sent to the running server — over MQTT through the devices' broker
when ``CITYBASE_IOT_MQTT_URL`` is set, else over the HTTP ingest — with events injected now and then (rain on
a cluster of flood points, a tilted manhole cover, smoke, an air-quality spike, a street light failing, a few
malformed readings), so the twin, the alarms, the incidents and the device pages are alive."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from citybase.core.keyfiles import read_key_texts
from citybase.geo import service as geo
from citybase.iot import service as iot
from citybase.iot.simulator import BAD_KINDS, DeviceSpec, Fleet, HttpSender, MqttSender, plan_devices, run
from citybase.storage.db import make_sessionmaker

log = logging.getLogger("citybase.demo.iot")
KEY_FILE = "iot-simulator.key"
KEY_ENV = "CITYBASE_IOT_SIMULATOR_KEY"
DEMO_DEVICES = 3000


def device_secret(key: bytes, device_id: str) -> str:
    """A simulated device's secret: derived from the data folder's key, so the simulator knows it again."""
    return base64.urlsafe_b64encode(hmac.new(key, device_id.encode(), hashlib.sha256).digest()[:24]).decode()


def ensure_devices(engine: Engine, data_dir: Path, n: int = DEMO_DEVICES, seed: int = 2026,
                   progress: Any = None) -> list[DeviceSpec]:
    """The district's ``n`` simulated devices, provisioned where they are missing; their specs with secrets."""
    keys = read_key_texts(KEY_ENV, Path(data_dir) / KEY_FILE, what="IoT simulator key")
    key = keys[0][0].encode() if keys else b"citybase-demo"
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        d = geo.district(session=s)
        code = d.code if d else "310104"
        bbox = (d.min_lon, d.min_lat, d.max_lon, d.max_lat) if d else (121.40, 31.12, 121.47, 31.22)
    planned = _inside(sessions, plan_devices(n, seed, code, bbox), seed)
    with sessions() as s:
        existing = set(iot.list_existing(session=s, device_ids=[p.device_id for p in planned]))
    missing = [p for p in planned if p.device_id not in existing]
    for i in range(0, len(missing), 1000):
        chunk = missing[i:i + 1000]
        with sessions() as s:
            iot.provision(session=s, devices=[iot.NewDevice(
                device_id=p.device_id, type_code=p.type_code, lon=p.lon, lat=p.lat, model="SIM-1",
                name=f"模拟{p.device_id}", secret=device_secret(key, p.device_id)) for p in chunk])
            s.commit()
        if progress:
            progress("devices", min(i + 1000, len(missing)), len(missing))
    return [DeviceSpec(p.device_id, p.type_code, device_secret(key, p.device_id), p.lon, p.lat) for p in planned]


def _inside(sessions: Any, planned: list[Any], seed: int) -> list[Any]:
    """The plan with every device inside the district's grids: one that fell outside (the plan spreads them
    over the district's bounding box) moves next to a building of the district, chosen by the seed."""
    rnd = random.Random(seed)
    with sessions() as s:
        index = geo.grid_index(session=s)
        homes = [(b.lon, b.lat) for b in geo.list_buildings(session=s, page_size=5000)[0]]
    out = []
    for p in planned:
        for _ in range(20):
            if not homes or index.locate(p.lon, p.lat) is not None:
                break
            lon, lat = rnd.choice(homes)
            p = p._replace(lon=round(lon + rnd.uniform(-2e-4, 2e-4), 6), lat=round(lat + rnd.uniform(-2e-4, 2e-4), 6))
        out.append(p)
    return out


class IotSimulation(threading.Thread):
    """The fleet sending in real time (the last ``backfill`` hours replayed first), events injected every
    ``every`` seconds on devices chosen at random."""

    def __init__(self, specs: list[DeviceSpec], *, base_url: str | None = None, mqtt_url: str | None = None,
                 backfill_hours: float = 1.0, every: float = 300.0, seed: int = 2026) -> None:
        super().__init__(name="citybase-iot-simulation", daemon=True)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per post would drown the server's log
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=backfill_hours)
        # the past hour replayed 120 times faster than real time, then held at the wall clock (real time)
        self.fleet = Fleet(specs, seed=seed, start=start, time_scale=120.0)
        self.sender: Any = MqttSender(mqtt_url) if mqtt_url else HttpSender(base_url or "http://127.0.0.1:8000",
                                                                             batch_size=100)
        self.via = "MQTT" if mqtt_url else "HTTP"
        self.every, self.rnd = every, random.Random(seed)
        self.stop_event = threading.Event()
        self.by_type: dict[str, list[str]] = {}
        for s in specs:
            self.by_type.setdefault(s.type_code, []).append(s.device_id)
        self.injected = 0

    def _pick(self, type_code: str) -> str | None:
        ids = self.by_type.get(type_code)
        return self.rnd.choice(ids) if ids else None

    def inject(self) -> None:
        """One round of events a little after the fleet's present (they play out over the next half hour)."""
        f, at = self.fleet, self.fleet.now + timedelta(seconds=30)
        floods = self.by_type.get("flood", [])
        if floods:
            first = self.rnd.randrange(len(floods))
            f.rain(floods[first:first + 3], start=at, minutes=20)
        for type_code, fn in (("manhole", f.tilt), ("smoke", f.smoke), ("light", f.lamp_fault)):
            dev = self._pick(type_code)
            if dev:
                fn(dev, start=at)
        aq = self.by_type.get("aq", [])
        if aq:
            f.air_spike(aq[:1], start=at, minutes=15)
        for _ in range(3):  # a few malformed readings, for the dead letters
            dev = self._pick(self.rnd.choice(list(self.by_type)))
            if dev:
                self.sender.send(*f.bad(dev, self.rnd.choice(BAD_KINDS)))
        self.injected += 1

    def run(self) -> None:
        timer = threading.Thread(target=self._events, name="citybase-iot-events", daemon=True)
        timer.start()
        try:
            run(self.fleet, self.sender, stop_event=self.stop_event, progress_every=60.0)
        except Exception:  # noqa: BLE001 - the demo's simulation must not take the server down
            log.exception("iot simulation stopped")
        finally:
            self.sender.close()

    def _events(self) -> None:
        while not self.stop_event.wait(60.0 if self.injected == 0 else self.every):
            try:
                self.inject()
            except Exception:  # noqa: BLE001
                log.exception("iot simulation: injecting events failed")

    def stop(self) -> None:
        self.stop_event.set()
