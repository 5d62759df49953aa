"""Simulated devices for the demo, the benches and the tests: a seeded fleet that reports like the real thing.

Why a simulator and not random numbers: the rules in ``iot.types`` only mean something against values that
move the way a city does — traffic slow at 08:00 and free at 03:00, an elderly person's water meter busy in the
morning and the evening and still at night, flood points dry until it rains. The fleet keeps such rhythms (in
Asia/Shanghai local time), some noise and a few drop-outs, and stays inside the declared ranges and
enumerations (the ingest refuses anything else), so every alarm the demo shows was caused by an event someone
injected on purpose (``rain``, ``air_spike``, ``tilt``, ``silent_meter``, ``smoke``, ``lamp_fault``), and every
dead letter by a bad reading asked for (``bad``).

Time is simulated: each device reports at its type's interval on the fleet's clock, and the readings carry that
clock's time (UTC ISO 8601 with ``Z``). ``run`` drives the clock from the wall clock (times ``time_scale``, never
ahead of the wall clock unless told, because the ingest refuses readings more than five minutes in the future),
or as fast as possible for benches. A fleet is deterministic: the same devices, seed and start give the same
messages, whatever the tick sizes, because every device draws from its own random stream.

Messages follow docs/iot.md: ``{"token", "t", "v"}``, sent over MQTT to ``<prefix>/<device id>/up`` at QoS 1
(``MqttSender``) or posted in batches with ``"device"`` to ``/api/v1/iot/readings`` (``HttpSender``)."""

from __future__ import annotations

import argparse
import csv
import hashlib
import heapq
import json
import math
import random
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

from citybase.iot.types import DEVICE_TYPES, DeviceType

Message = dict[str, Any]
Area = tuple[float, float, float, float]  # lon0, lat0, lon1, lat1

SHANGHAI_OFFSET = 8 * 3600  # Asia/Shanghai has kept +08:00 without daylight saving since 1991
BAD_KINDS = ("out_of_range", "unknown_attribute", "future_time", "no_offset", "missing_time", "wrong_token",
             "wrong_kind", "bad_enum", "unknown_device")

# The mix of a district's devices: many cheap ones in homes and on kerbs, few expensive stations.
MIX: dict[str, float] = {"parking": 30, "watermeter": 16, "smoke": 16, "light": 10, "waste": 7, "manhole": 7,
                         "hydrant": 5, "flood": 4, "traffic": 3, "noise": 1.5, "aq": 0.5}
_HOMES = {"parking", "watermeter", "smoke", "waste"}  # clustered in neighbourhoods
_ROADS = {"traffic", "noise", "light", "flood", "manhole", "hydrant"}  # along streets


class DeviceSpec(NamedTuple):
    """One provisioned device, as provisioning hands it over."""

    device_id: str
    type_code: str
    token: str
    lon: float
    lat: float


class PlannedDevice(NamedTuple):
    """One device to provision: no token yet (provisioning makes it)."""

    device_id: str
    type_code: str
    lon: float
    lat: float


# ------------------------------------------------------------------------------------------ planning


def plan_devices(n: int, seed: int, district_code: str = "310104",
                 bbox: Area = (121.40, 31.12, 121.47, 31.22)) -> list[PlannedDevice]:
    """N devices with the district's mix of types (every type at least once when N allows) and plausible places:
    home devices clustered in neighbourhoods, road devices along a street grid, air stations spread out."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"plan:{seed}:{district_code}")
    total = sum(MIX.values())
    exact = {code: n * w / total for code, w in MIX.items()}
    counts = {code: int(x) for code, x in exact.items()}
    for code in sorted(MIX, key=lambda c: exact[c] - counts[c], reverse=True)[: n - sum(counts.values())]:
        counts[code] += 1
    if n >= len(MIX):
        for code in MIX:
            if counts[code] == 0:
                counts[max(counts, key=counts.__getitem__)] -= 1
                counts[code] = 1
    lon0, lat0, lon1, lat1 = bbox
    centres = [(rng.uniform(lon0, lon1), rng.uniform(lat0, lat1)) for _ in range(max(3, n // 400))]
    step = 0.008  # about 800 m between main streets
    avenues = [lon0 + step * (i + 0.5) for i in range(max(1, int((lon1 - lon0) / step)))]
    streets = [lat0 + step * (i + 0.5) for i in range(max(1, int((lat1 - lat0) / step)))]

    def inside(lon: float, lat: float) -> tuple[float, float]:
        return round(min(max(lon, lon0), lon1), 6), round(min(max(lat, lat0), lat1), 6)

    out: list[PlannedDevice] = []
    for code in MIX:
        for serial in range(1, counts[code] + 1):
            if code in _HOMES:
                cx, cy = rng.choice(centres)
                lon, lat = inside(rng.gauss(cx, 0.004), rng.gauss(cy, 0.004))
            elif code in _ROADS:
                if rng.random() < 0.5:
                    lon, lat = inside(rng.choice(avenues) + rng.gauss(0, 0.0002), rng.uniform(lat0, lat1))
                else:
                    lon, lat = inside(rng.uniform(lon0, lon1), rng.choice(streets) + rng.gauss(0, 0.0002))
            else:  # stations spread over the district: stratified along its length
                k = counts[code]
                lon, lat = inside(rng.uniform(lon0, lon1), lat0 + (lat1 - lat0) * (serial - rng.random()) / k)
            out.append(PlannedDevice(f"{code}-{district_code}-{serial:06d}", code, lon, lat))
    return out


def fake_token(device_id: str, seed: int = 0) -> str:
    """A stable stand-in secret for runs without provisioning (a broker bench): the ingest will refuse it."""
    return "sim-" + hashlib.sha256(f"{seed}:{device_id}".encode()).hexdigest()[:32]


def load_specs(path: str | Path) -> list[DeviceSpec]:
    """Device specs from a file written by provisioning: JSON (a list of objects or of 5-lists, or an object
    with "devices"), JSON lines, or CSV with a header. Object keys: device_id|id|device, type_code|type, token|
    secret, lon, lat (or location: [lon, lat])."""
    text = Path(path).read_text(encoding="utf-8")
    rows: list[Any]
    if str(path).endswith(".csv"):
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            data = json.loads(text)
            rows = data["devices"] if isinstance(data, dict) else data
        except json.JSONDecodeError:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    specs = []
    for row in rows:
        if isinstance(row, list | tuple):
            specs.append(DeviceSpec(str(row[0]), str(row[1]), str(row[2]), float(row[3]), float(row[4])))
            continue
        lon, lat = row.get("lon"), row.get("lat")
        if lon is None and row.get("location"):
            lon, lat = row["location"][:2]
        specs.append(DeviceSpec(str(row.get("device_id") or row.get("id") or row["device"]),
                                str(row.get("type_code") or row["type"]), str(row.get("token") or row["secret"]),
                                float(lon), float(lat)))
    return specs


# ------------------------------------------------------------------------------------------ rhythms


def _bump(h: float, centre: float, width: float) -> float:
    """A bell around a local hour, wrapping at midnight."""
    d = (h - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width) ** 2)


def traffic_demand(h: float, weekend: bool) -> float:
    """The share of a road's capacity in use at local hour h: rush hours at 08:00 and 17:45 on weekdays."""
    if weekend:
        return min(1.0, 0.06 + 0.45 * _bump(h, 11.5, 3.0) + 0.45 * _bump(h, 17.0, 2.5))
    return min(1.0, 0.06 + 0.85 * _bump(h, 8.0, 1.1) + 0.75 * _bump(h, 17.75, 1.4) + 0.4 * _bump(h, 12.5, 3.0))


def water_use(h: float) -> float:
    """An elderly person living alone, m³/h: washing in the morning, cooking at noon and in the evening, still
    at night."""
    day = 0.004 if 6.5 <= h < 22.0 else 0.0
    return 0.022 * _bump(h, 7.3, 0.9) + 0.01 * _bump(h, 11.8, 0.7) + 0.02 * _bump(h, 18.8, 1.2) + day


def _daylight(doy: int) -> tuple[float, float]:
    """Approximate local sunrise and sunset in Shanghai (10 h of day in December, 14 h in June)."""
    length = 12.0 + 2.1 * math.sin(2 * math.pi * (doy - 80) / 365.0)
    return 11.9 - length / 2, 11.9 + length / 2


def _local(t: float) -> tuple[float, int, int, int]:
    """Local hour (fractional), day number, weekday (Monday 0) and day of year of an epoch second."""
    lt = t + SHANGHAI_OFFSET
    day = int(lt // 86400)
    doy = time.gmtime(lt).tm_yday
    return (lt % 86400) / 3600.0, day, (day + 3) % 7, doy


def iso(t: float) -> str:
    """An epoch second as UTC ISO 8601 with its offset (Z), the convention's form."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


# ------------------------------------------------------------------------------------------ events


@dataclass
class Event:
    """An injected event: which devices, from when, until when it has an effect (``end``), and the time by which
    its rule's value is back past the clear level (``clear_by``)."""

    kind: str
    devices: tuple[str, ...]
    start: datetime
    end: datetime
    clear_by: datetime
    params: dict[str, Any] = field(default_factory=dict)

    def active(self, t: float) -> bool:
        return self._s <= t < self._e

    def __post_init__(self) -> None:
        self._s = self.start.timestamp()
        self._e = self.end.timestamp()


class _Device:
    __slots__ = ("spec", "dtype", "rng", "state", "events", "interval")

    def __init__(self, spec: DeviceSpec, dtype: DeviceType, seed: int) -> None:
        self.spec = spec
        self.dtype = dtype
        self.rng = random.Random(f"{seed}:{spec.device_id}")
        self.state: dict[str, Any] = {}
        self.events: list[Event] = []
        self.interval = dtype.interval


def _clamp(dtype: DeviceType, v: dict[str, Any], digits: int = 3) -> dict[str, Any]:
    for name, value in v.items():
        if isinstance(value, float):
            a = dtype.attribute(name)
            value = round(value, digits)
            if a is not None and a.min is not None and value < a.min:
                value = float(a.min)
            if a is not None and a.max is not None and value > a.max:
                value = float(a.max)
            v[name] = value
    return v


# ------------------------------------------------------------------------------------------ the fleet


class Fleet:
    """A seeded set of simulated devices on a simulated clock.

    ``tick(until)`` gives every reading due up to ``until`` in time order; ``readings()`` does the same lazily,
    as fast as the caller takes them. Events may be injected from another thread while a ``run`` is going."""

    def __init__(self, devices: Iterable[DeviceSpec | Sequence[Any]], *, seed: int = 0,
                 start: datetime | None = None, time_scale: float = 1.0, dropout: float = 0.01) -> None:
        self.seed = seed
        self.time_scale = float(time_scale)
        self.dropout = dropout
        start = start or datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self.start = start.astimezone(UTC)
        self._now = self.start.timestamp()
        self._lock = threading.RLock()
        self._devices: dict[str, _Device] = {}
        self._heap: list[tuple[float, int, str, bool]] = []  # (due, order, device id, forced report)
        self._order = 0
        self._bad: list[tuple[float, int, str, Message]] = []
        self._regional: dict[int, float] = {}
        self.events: list[Event] = []
        for raw in devices:
            spec = raw if isinstance(raw, DeviceSpec) else DeviceSpec(*raw)
            dtype = DEVICE_TYPES.get(spec.type_code)
            if dtype is None:
                raise ValueError(f"unknown device type {spec.type_code!r} for {spec.device_id}")
            if spec.device_id in self._devices:
                raise ValueError(f"device {spec.device_id} given twice")
            dev = _Device(spec, dtype, seed)
            self._devices[spec.device_id] = dev
            self._push(self._now + dev.rng.uniform(0, dev.interval), spec.device_id, False)

    # -- the clock and the schedule

    @property
    def now(self) -> datetime:
        """The simulated time up to which readings were given."""
        return datetime.fromtimestamp(self._now, UTC)

    @property
    def devices(self) -> list[DeviceSpec]:
        return [d.spec for d in self._devices.values()]

    def natural_rate(self) -> float:
        """Messages per simulated second the fleet sends when healthy."""
        return sum(1.0 / d.interval for d in self._devices.values()) * (1 - self.dropout)

    def next_due(self) -> datetime | None:
        with self._lock:
            times = [h[0] for h in self._heap[:1]] + [b[0] for b in self._bad]
            return datetime.fromtimestamp(min(times), UTC) if times else None

    def _push(self, due: float, device_id: str, forced: bool) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, device_id, forced))

    def tick(self, until: datetime) -> list[tuple[str, Message]]:
        """Every message due up to ``until`` (simulated), in time order; the clock moves to ``until``."""
        limit = until.timestamp()
        with self._lock:
            out = list(self._take(limit))
            self._now = max(self._now, limit)
        return out

    def readings(self, until: datetime | None = None) -> Iterator[tuple[str, Message]]:
        """Messages one by one in time order, the clock following them: for benches, as fast as possible."""
        limit = until.timestamp() if until else math.inf
        while True:
            with self._lock:
                got = next(self._take(limit, one=True), None)
            if got is None:
                if until is not None:
                    self._now = max(self._now, limit)
                return
            yield got

    def _take(self, limit: float, one: bool = False) -> Iterator[tuple[str, Message]]:
        heap = self._heap
        while True:
            if self._bad and self._bad[0][0] <= limit and (not heap or self._bad[0][0] <= heap[0][0]):
                t, _, device_id, msg = heapq.heappop(self._bad)
                self._now = max(self._now, t)
                yield device_id, msg
                if one:
                    return
                continue
            if not heap or heap[0][0] > limit:
                return
            t, _, device_id, forced = heapq.heappop(heap)
            dev = self._devices[device_id]
            if not forced:
                self._push(t + dev.interval * dev.rng.uniform(0.98, 1.02), device_id, False)
            self._now = max(self._now, t)
            v = self._values(dev, t)
            dropped = dev.rng.random() < self.dropout
            if dropped and not forced and not dev.state.pop("_skipped", False) \
                    and not any(e.active(t) for e in dev.events):
                # the device skipped this report (radio, battery), never two in a row, so it is never taken for
                # offline (three intervals); a device in an event reports every time, so the event shows
                dev.state["_skipped"] = True
                continue
            dev.state.pop("_skipped", None)
            yield device_id, {"token": dev.spec.token, "t": iso(t), "v": v}
            if one:
                return

    # -- values

    def _values(self, dev: _Device, t: float) -> dict[str, Any]:
        h, day, weekday, doy = _local(t)
        s, rng = dev.state, dev.rng
        last = s.get("_t", t)
        s["_t"] = t
        code = dev.dtype.code
        v: dict[str, Any]
        if code == "traffic":
            cap = s.setdefault("cap", rng.uniform(15, 45))
            free = s.setdefault("free", rng.uniform(50, 65))
            d = traffic_demand(h, weekday >= 5)
            speed = free * (1 - 0.68 * d ** 1.5) + rng.gauss(0, 3)
            flow = cap * d * (1 + rng.gauss(0, 0.08))
            if self._rain(dev, t) > 0:
                speed, flow = speed * 0.75, flow * 0.85
            v = {"intensity": max(0.0, flow), "averageVehicleSpeed": max(3.0, speed),
                 "occupancy": 0.02 + 0.45 * d ** 1.3 + rng.gauss(0, 0.02)}
            v["intensity"] = float(round(v["intensity"]))
        elif code == "noise":
            off = s.setdefault("off", rng.uniform(-3, 4))
            laeq = 42 + 22 * traffic_demand(h, weekday >= 5) + off + rng.gauss(0, 1.5)
            v = {"LAeq": laeq, "LAmax": laeq + 6 + rng.expovariate(1 / 6)}
        elif code == "aq":
            f = s.setdefault("f", rng.uniform(0.9, 1.1))
            ratio = s.setdefault("ratio", rng.uniform(1.25, 1.5))
            shape = 1 + 0.25 * _bump(h, 7.5, 2.5) + 0.2 * _bump(h, 23.5, 3) - 0.2 * _bump(h, 15, 3)
            pm25 = self._regional_pm25(day) * f * shape * (1 + rng.gauss(0, 0.05))
            pm10 = pm25 * ratio + rng.gauss(0, 2)
            season = 0.6 + 0.4 * math.sin(2 * math.pi * (doy - 100) / 365)
            temp = 17 + 11 * math.sin(2 * math.pi * (doy - 105) / 365) + 3.5 * math.cos(2 * math.pi * (h - 14.5) / 24)
            v = {"pm25": pm25, "pm10": pm10, "no2": 15 + 45 * traffic_demand(h, weekday >= 5) + rng.gauss(0, 4),
                 "o3": 15 + 70 * season * _bump(h, 14.5, 2.5) + rng.gauss(0, 5), "temperature": temp + rng.gauss(0, 0.4),
                 "relativeHumidity": 72 - 14 * math.cos(2 * math.pi * (h - 14.5) / 24) + rng.gauss(0, 3)}
            for e in dev.events:
                if e.kind == "air_spike" and e.active(t):
                    extra = e.params["peak"] * self._ramp(e, t, rise=300, fall=600) - pm10
                    if extra > 0:
                        v["pm10"], v["pm25"] = pm10 + extra + rng.gauss(0, 3), pm25 + 0.3 * extra
        elif code == "flood":
            level = abs(rng.gauss(0, 0.004))
            rain = self._rain(dev, t, level=True)
            v = {"currentLevel": max(level, rain + rng.gauss(0, 0.006)) if rain else level,
                 "batteryLevel": self._battery(dev)}
        elif code == "parking":
            status = s.get("status")
            if status == "closed":
                status = "free" if rng.random() < 0.1 else "closed"
            elif rng.random() < 0.001:
                status = "closed"
            elif status in ("free", "occupied") and rng.random() < 0.85:
                pass
            else:
                home = s.setdefault("home", rng.random() < 0.6)
                p = 0.66 + 0.24 * math.cos(2 * math.pi * (h - 2) / 24) if home else \
                    0.50 + 0.38 * math.cos(2 * math.pi * (h - 14) / 24)
                status = "occupied" if rng.random() < p else "free"
            s["status"] = status
            v = {"status": "unknown" if rng.random() < 0.002 else status}
        elif code == "light":
            rise, sset = _daylight(doy)
            dark = h >= sset + 0.25 or h < rise - 0.25
            power = ("low" if 23.0 <= h or h < 5.0 else "on") if dark else "off"
            if power != "off" and s.get("power") == "off" and rng.random() < 0.3:
                power = "bootingUp"
            s["power"] = "off" if power == "off" else "on"
            status = "ok"
            for e in dev.events:
                if e.kind == "lamp_fault" and e.active(t):
                    status, power = e.params["status"], "off"
            level = {"on": 1.0, "low": 0.5, "bootingUp": 0.3, "off": 0.0}[power]
            v = {"powerState": power, "status": status,
                 "illuminanceLevel": level * rng.uniform(0.95, 1.0) if level else 0.0}
        elif code == "waste":
            fill = s.get("fill", rng.uniform(0.05, 0.4))
            speed = s.setdefault("speed", rng.uniform(0.02, 0.055))
            active = 1.0 if 7 <= h < 22 else 0.15
            fill += speed * active * (t - last) / 3600
            lh = _local(last)[0]
            for pickup in (5.5, 13.5):  # collections at 05:30 and 13:30 local time
                if (t - last) >= 86400 or (lh < pickup <= h) or (h < lh and (pickup > lh or pickup <= h)):
                    fill = rng.uniform(0.0, 0.06)
            fill = min(fill, 1.0)
            s["fill"] = fill
            temp = 17 + 11 * math.sin(2 * math.pi * (doy - 105) / 365) + 3 * math.cos(2 * math.pi * (h - 14.5) / 24)
            for e in dev.events:
                if e.kind == "smoke" and e.active(t):
                    temp = 85 + rng.uniform(0, 15)
            v = {"fillingLevel": fill + rng.gauss(0, 0.01), "temperature": temp + 2 + rng.gauss(0, 0.5)}
        elif code == "manhole":
            tilt = s.setdefault("tilt", rng.uniform(0.3, 2.0))
            water = s.setdefault("water", rng.uniform(0.2, 1.2))
            angle = abs(tilt + rng.gauss(0, 0.15))
            for e in dev.events:
                if e.kind == "tilt" and e.active(t):
                    angle = e.params["angle"] + rng.gauss(0, 1)
            rain = self._rain(dev, t)
            v = {"tiltAngle": angle, "waterLevel": water + 0.05 * math.sin(2 * math.pi * h / 24)
                 + 1.2 * rain + rng.gauss(0, 0.01)}
        elif code == "watermeter":
            total = s.get("total", rng.uniform(100, 2000))
            person = s.setdefault("person", rng.uniform(0.6, 1.4))
            silent = any(e.kind == "silent_meter" and e.active(t) for e in dev.events)
            if silent:
                flow = 0.0
                s["resume"] = True
            elif s.pop("resume", False):
                flow = rng.uniform(0.02, 0.05)  # back home: the first hour after a silence always shows use
            else:
                flow = person * water_use(h) * rng.lognormvariate(0, 0.3)
                if flow < 0.001:
                    flow = rng.uniform(0.006, 0.012) if rng.random() < 0.15 else 0.0  # a night-time flush, or none
            total += flow * (t - last) / 3600
            s["total"] = total
            v = {"flow": round(flow, 4), "totalVolume": round(total, 3)}
        elif code == "hydrant":
            base = s.setdefault("base", rng.uniform(0.28, 0.42))
            v = {"pressure": base - 0.06 * min(1.0, water_use(h) / 0.026) + rng.gauss(0, 0.008),
                 "tiltAngle": abs(s.setdefault("tilt", rng.uniform(0.3, 1.5)) + rng.gauss(0, 0.1))}
        elif code == "smoke":
            smoke = any(e.kind == "smoke" and e.active(t) for e in dev.events)
            v = {"smokeDetected": "yes" if smoke else "no", "batteryLevel": self._battery(dev)}
        else:  # a type declared after this simulator was written: mid-range values, first allowed state
            v = {a.name: (a.values[0] if a.values else (a.min + a.max) / 2 + rng.gauss(0, (a.max - a.min) / 100))
                 for a in dev.dtype.attributes}
        return _clamp(dev.dtype, v, 4 if code == "watermeter" else 3)

    def _battery(self, dev: _Device) -> float:
        b = dev.state.get("battery", dev.rng.uniform(0.55, 1.0)) - 2e-6
        dev.state["battery"] = max(b, 0.05)
        return dev.state["battery"]

    def _regional_pm25(self, day: int) -> float:
        """One PM2.5 level per day for the whole district (pollution is regional), drifting from day to day."""
        if day not in self._regional:
            self._regional[day] = random.Random(f"{self.seed}:aq:{day}").uniform(20, 45)
        return self._regional[day]

    @staticmethod
    def _ramp(e: Event, t: float, *, rise: float, fall: float) -> float:
        """0 → 1 over ``rise`` seconds from the start, 1 → 0 over the last ``fall`` seconds before the end."""
        s, end = e.start.timestamp(), e.end.timestamp()
        return max(0.0, min(1.0, (t - s) / rise, (end - t) / fall))

    def _rain(self, dev: _Device, t: float, level: bool = False) -> float:
        """The water a rain event puts at this device: for flood points the level in metres (rise, plateau,
        exponential drain after the rain), else the share of the rain's strength (0..1)."""
        out = 0.0
        for e in dev.events:
            if e.kind != "rain" or not e.active(t):
                continue
            s, rain_end = e.start.timestamp(), e.params["rain_end"]
            if not level:
                out = max(out, 1.0 if t < rain_end else math.exp(-(t - rain_end) / 600))
                continue
            peak = e.params["peaks"][dev.spec.device_id]
            rise = e.params["rise"]
            if t < s + rise:
                out = max(out, peak * (t - s) / rise)
            elif t < rain_end:
                out = max(out, peak)
            else:
                out = max(out, peak * math.exp(-(t - rain_end) / e.params["tau"][dev.spec.device_id]))
        return out

    # -- injected events

    def _select(self, what: str | Iterable[str] | Area | None, types: set[str]) -> list[_Device]:
        if what is None:
            devs = list(self._devices.values())
        elif isinstance(what, str):
            devs = [self._device(what)]
        elif isinstance(what, tuple) and len(what) == 4 and all(isinstance(x, int | float) for x in what):
            lon0, lat0, lon1, lat1 = what
            devs = [d for d in self._devices.values() if lon0 <= d.spec.lon <= lon1 and lat0 <= d.spec.lat <= lat1]
        else:
            devs = [self._device(x) for x in what]  # type: ignore[union-attr]
        return [d for d in devs if d.dtype.code in types]

    def _device(self, device_id: str) -> _Device:
        try:
            return self._devices[device_id]
        except KeyError:
            raise KeyError(f"no simulated device {device_id}") from None

    def _when(self, start: datetime | None) -> float:
        return self._now if start is None else start.timestamp()

    def _add(self, kind: str, devs: list[_Device], s: float, end: float, clear_by: float,
             force: Iterable[float] = (), **params: Any) -> Event:
        if not devs:
            raise ValueError(f"{kind}: no device of a fitting type selected")
        event = Event(kind, tuple(d.spec.device_id for d in devs), datetime.fromtimestamp(s, UTC),
                      datetime.fromtimestamp(end, UTC), datetime.fromtimestamp(clear_by, UTC), params)
        with self._lock:
            for d in devs:
                d.events = [e for e in d.events if e._e > self._now] + [event]
                for at in force:  # a device reports at once when its sensor trips, as real ones do
                    self._push(max(at, self._now), d.spec.device_id, True)
            self.events.append(event)
        return event

    def rain(self, where: str | Iterable[str] | Area | None = None, start: datetime | None = None,
             minutes: float = 30.0) -> Event:
        """A downpour over an area (lon0, lat0, lon1, lat1), a list of devices or everywhere: flood points rise
        within five minutes to 0.22–0.45 m (past the 0.15 m limit for longer than the rule's two minutes, for any
        rain of five minutes or more), then drain below 0.10 m; manholes fill, traffic slows."""
        devs = self._select(where, {"flood", "manhole", "traffic"})
        s = self._when(start)
        rain_end = s + minutes * 60
        rng = random.Random(f"{self.seed}:rain:{len(self.events)}")
        floods = [d.spec.device_id for d in devs if d.dtype.code == "flood"]
        peaks = {i: rng.uniform(0.22, 0.45) for i in floods}
        drain = max(900.0, minutes * 30)  # seconds until back to a wet 2 cm
        tau = {i: drain / math.log(p / 0.02) for i, p in peaks.items()}
        below = max((rain_end + tau[i] * math.log(peaks[i] / 0.09) for i in floods), default=rain_end + 600)
        return self._add("rain", devs, s, rain_end + drain, below + 60, rain_end=rain_end,
                         rise=min(300.0, minutes * 15), peaks=peaks, tau=tau, minutes=minutes)

    def air_spike(self, where: str | Iterable[str] | Area | None = None, start: datetime | None = None,
                  minutes: float = 30.0, peak: float = 280.0) -> Event:
        """Construction dust: PM10 climbs to ``peak`` µg/m³ within five minutes and stays (past 150 for longer than
        the rule's ten minutes at the stations' five-minute reports when ``minutes`` >= 25), then falls back
        under 120 within ten minutes of the end."""
        devs = self._select(where, {"aq"})
        s = self._when(start)
        end = s + minutes * 60
        return self._add("air_spike", devs, s, end, end + 600, force=(s,), peak=peak)

    def tilt(self, device: str, start: datetime | None = None, minutes: float = 30.0, angle: float = 35.0) -> Event:
        """A manhole cover lifted or knocked aside: the cover reports at once at ``angle`` degrees, and again when
        it is put back (under 5°)."""
        devs = self._select(device, {"manhole"})
        s = self._when(start)
        end = s + minutes * 60
        return self._add("tilt", devs, s, end, end + 1, force=(s, end), angle=angle)

    def silent_meter(self, device: str, start: datetime | None = None, hours: float = 13.0) -> Event:
        """An elderly person's water meter shows no use (flow 0) for ``hours`` (13 by default, so the readings
        span more than the rule's 12 hours); afterwards the first reading shows use again."""
        devs = self._select(device, {"watermeter"})
        s = self._when(start)
        end = s + hours * 3600
        return self._add("silent_meter", devs, s, end, end + devs[0].interval * 1.05, force=(s,), hours=hours)

    def smoke(self, device: str, start: datetime | None = None, minutes: float = 10.0) -> Event:
        """A smoke detector (or a waste container's thermometer) sees a fire: reports at once, and when it is out."""
        devs = self._select(device, {"smoke", "waste"})
        s = self._when(start)
        end = s + minutes * 60
        # a container's "hot" rule wants a minute of heat: it reports again 90 s on, not 10 minutes later
        return self._add("smoke", devs, s, end, end + 1, force=(s, min(s + 90, end), end))

    def lamp_fault(self, device: str, start: datetime | None = None, minutes: float = 60.0,
                   status: str = "defectiveLamp") -> Event:
        """A streetlight's lamp fails (reported at once) and is repaired after ``minutes``."""
        devs = self._select(device, {"light"})
        s = self._when(start)
        end = s + minutes * 60
        return self._add("lamp_fault", devs, s, end, end + 1, force=(s, end), status=status)

    def bad(self, device: str, kind: str, at: datetime | None = None) -> tuple[str, Message]:
        """Queue one reading the ingest must refuse (kind one of ``BAD_KINDS``), sent with the next tick at or
        after ``at``; returns what will be sent. It does not change the device's state."""
        if kind not in BAD_KINDS:
            raise ValueError(f"unknown bad reading kind {kind!r}; one of {', '.join(BAD_KINDS)}")
        dev = self._device(device)
        t = self._when(at)
        numeric = [a for a in dev.dtype.attributes if a.numeric]
        enums = [a for a in dev.dtype.attributes if not a.numeric]
        first = dev.dtype.attributes[0]
        ok = {first.name: first.values[0] if first.values else float((first.min + first.max) / 2)}
        msg: Message = {"token": dev.spec.token, "t": iso(t), "v": ok}
        target = device
        if kind == "out_of_range" and numeric:
            msg["v"] = {numeric[0].name: float(numeric[0].max + max(1.0, numeric[0].max - numeric[0].min))}
        elif kind in ("out_of_range", "bad_enum") and enums:
            msg["v"] = {enums[0].name: "purple"}
        elif kind == "bad_enum":
            msg["v"] = {numeric[0].name: float(numeric[0].min - 1 - abs(numeric[0].min))}
        elif kind == "unknown_attribute":
            msg["v"] = {"colour": 1.0}
        elif kind == "wrong_kind":
            msg["v"] = {first.name: "high"} if first.numeric else {first.name: 1.5}
        elif kind == "future_time":
            msg["t"] = iso(t + 3600)
        elif kind == "no_offset":
            msg["t"] = iso(t)[:-1]
        elif kind == "missing_time":
            del msg["t"]
        elif kind == "wrong_token":
            msg["token"] = "wrong-" + hashlib.sha256(f"{device}:{t}".encode()).hexdigest()[:24]
        elif kind == "unknown_device":
            target = f"{dev.dtype.code}-000000-{int(t) % 1000000:06d}"
        with self._lock:
            self._order += 1
            heapq.heappush(self._bad, (t, self._order, target, msg))
        return target, msg


# ------------------------------------------------------------------------------------------ senders


class Sender(Protocol):
    def send(self, device_id: str, message: Message) -> None: ...

    def flush(self, timeout: float = 60.0) -> bool: ...

    def close(self) -> None: ...


class NullSender:
    """Counts and drops: the generator's own speed, or a dry run."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, device_id: str, message: Message) -> None:
        self.sent += 1

    def flush(self, timeout: float = 60.0) -> bool:
        return True

    def close(self) -> None:
        pass


class MqttSender:
    """Publishes each message at QoS 1 to ``<prefix>/<device id>/up`` on one connection, many messages in
    flight (paho's network loop in its thread); ``flush`` waits for every PUBACK. ``send`` blocks only when
    ``max_pending`` messages are unacknowledged, so a fast producer cannot fill the memory.

    ``max_inflight`` is paho's own window, unlimited (0) by default: with a limit, paho walks every message in
    flight on each PUBACK to find the next queued one, so a window of 1000 is three times slower than one of
    50 on this machine; our ``max_pending`` bound does the flow control in O(1) instead."""

    def __init__(self, url: str = "mqtt://127.0.0.1:1883", topic_prefix: str = "citybase/iot", *,
                 client_id: str | None = None, qos: int = 1, max_inflight: int = 0, max_pending: int = 5000,
                 connect_timeout: float = 10.0) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        u = urlsplit(url)
        if u.scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError(f"not an MQTT URL: {url}")
        self.prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self.max_pending = max_pending
        self.sent = self.acked = self.failed = 0
        self._pending = 0
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._refused: Any = None
        cid = client_id or f"citybase-sim-{hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:10]}"
        self.client = c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        if u.username:
            c.username_pw_set(unquote(u.username), unquote(u.password or ""))
        if u.scheme == "mqtts":
            c.tls_set()
        c.connect(u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883), keepalive=60)
        c.loop_start()
        if not self._connected.wait(connect_timeout) or self._refused is not None:
            c.loop_stop()
            raise ConnectionError(f"MQTT broker {u.hostname}:{u.port} did not accept the connection "
                                  f"({self._refused or 'no answer'})")

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refused = reason
        self._connected.set()

    def _on_publish(self, _c: Any, _u: Any, _mid: int, _reason: Any, _props: Any) -> None:
        with self._cond:
            self.acked += 1
            self._pending -= 1
            if self._pending <= 0 or self._pending == self.max_pending - 1:
                self._cond.notify_all()

    def send(self, device_id: str, message: Message) -> None:
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        with self._cond:
            while self._pending >= self.max_pending:
                self._cond.wait(1.0)
            self._pending += 1
        info = self.client.publish(f"{self.prefix}/{device_id}/up", payload, qos=self.qos)
        # not connected: paho keeps a QoS 1 message and sends it after reconnecting; anything else is lost
        if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            with self._cond:
                self._pending -= 1
                self.failed += 1
            return
        self.sent += 1
        if self.qos == 0:
            with self._cond:
                self._pending -= 1

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the broker acknowledged everything sent; False if it had not within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def close(self, timeout: float = 60.0) -> None:
        self.flush(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttSender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class HttpSender:
    """Posts batches (a JSON list of messages, each with its ``"device"``) to ``/api/v1/iot/readings``; a 503 or
    a lost connection is retried with back-off (the server said it was a passing fault), anything else counted.
    ``on_answer(batch, response)`` sees every answer (per-message outcomes are the endpoint's)."""

    def __init__(self, base_url: str, *, batch_size: int = 200, path: str = "/api/v1/iot/readings",
                 headers: dict[str, str] | None = None, timeout: float = 30.0, retries: int = 3,
                 on_answer: Callable[[list[Message], Any], None] | None = None) -> None:
        import httpx

        self._httpx = httpx
        self.url = base_url.rstrip("/") + path
        self.batch_size = batch_size
        self.retries = retries
        self.on_answer = on_answer
        self.client = httpx.Client(headers=headers, timeout=timeout)
        self._batch: list[Message] = []
        self.sent = self.batches = self.failed = 0
        self.statuses: Counter[int] = Counter()

    def send(self, device_id: str, message: Message) -> None:
        self._batch.append({"device": device_id, **message})
        if len(self._batch) >= self.batch_size:
            self._post()

    def _post(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        for attempt in range(self.retries + 1):
            try:
                r = self.client.post(self.url, json=batch)
            except self._httpx.TransportError:
                if attempt == self.retries:
                    self.failed += len(batch)
                    self.statuses[0] += 1
                    return
                time.sleep(0.5 * 2 ** attempt)
                continue
            if r.status_code == 503 and attempt < self.retries:
                time.sleep(float(r.headers.get("Retry-After", 0.5 * 2 ** attempt)))
                continue
            break
        self.statuses[r.status_code] += 1
        self.batches += 1
        if r.is_success:
            self.sent += len(batch)
        else:
            self.failed += len(batch)
        if self.on_answer:
            self.on_answer(batch, r)

    def flush(self, timeout: float = 60.0) -> bool:
        self._post()
        return True

    def close(self) -> None:
        self.flush()
        self.client.close()

    def __enter__(self) -> HttpSender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ running


@dataclass
class Progress:
    sent: int
    elapsed: float  # wall seconds since the start
    per_second: float  # over the last progress interval
    average: float  # since the start
    sim_time: datetime
    done: bool = False


def run(fleet: Fleet, sender: Sender, rate: float | None = None, duration: float | None = None,
        stop_event: threading.Event | None = None, progress: Callable[[Progress], None] | None = None, *,
        realtime: bool = True, until: datetime | None = None, lead: float | None = 0.0,
        progress_every: float = 1.0, flush_timeout: float = 60.0) -> Progress:
    """Send the fleet's messages until ``duration`` wall seconds, ``until`` (simulated) or ``stop_event``.

    ``realtime``: the simulated clock follows the wall clock times ``fleet.time_scale``, but never runs more than
    ``lead`` seconds ahead of it (None: no limit), since the ingest refuses readings from the future; so a fleet
    started hours in the past replays them fast, then goes on in real time. ``rate`` caps the messages per second
    (a backlog is sent later). Not ``realtime`` (benches): messages go as fast as possible, or at ``rate``, the
    simulated clock advancing with them. The sender is flushed (PUBACKs waited for) at the end."""
    t0 = time.monotonic()
    sent = 0
    last_t, last_n = t0, 0
    sim_base = fleet._now

    def stopped(now: float) -> bool:
        return (stop_event is not None and stop_event.is_set()) or (duration is not None and now - t0 >= duration)

    def report(now: float, done: bool = False) -> None:
        nonlocal last_t, last_n
        if progress is None:
            return
        el = max(now - t0, 1e-9)
        progress(Progress(sent, el, (sent - last_n) / max(now - last_t, 1e-9), sent / el, fleet.now, done))
        last_t, last_n = now, sent

    def pace(now: float) -> float:
        if rate:
            ahead = sent / rate - (now - t0)
            if ahead > 0:
                time.sleep(min(ahead, 0.5))
                return time.monotonic()
        return now

    now = t0
    if realtime:
        backlog: deque[tuple[str, Message]] = deque()
        limit = until.timestamp() if until else math.inf
        while not stopped(now):
            sim = min(sim_base + (now - t0) * fleet.time_scale, limit)
            capped = lead is not None and sim > time.time() + lead
            if capped:
                sim = time.time() + lead  # type: ignore[operator]
            if sim > fleet._now:
                backlog.extend(fleet.tick(datetime.fromtimestamp(sim, UTC)))
            while backlog and not stopped(now):
                sender.send(*backlog.popleft())
                sent += 1
                now = pace(time.monotonic()) if rate else (time.monotonic() if sent % 256 == 0 else now)
                if now - last_t >= progress_every:
                    report(now)
            if fleet._now >= limit and not backlog:
                break
            if not backlog:
                nxt = fleet.next_due()
                # the wall seconds until the next reading: simulated ones shrink by the time scale, unless the
                # clock is held back at the wall clock
                wait = 0.2 if nxt is None else (nxt.timestamp() - fleet._now) / (1.0 if capped else fleet.time_scale)
                if stop_event is not None:
                    stop_event.wait(max(0.005, min(wait, 0.2)))
                else:
                    time.sleep(max(0.005, min(wait, 0.2)))
            now = time.monotonic()
            if now - last_t >= progress_every:
                report(now)
    else:
        for item in fleet.readings(until):
            sender.send(*item)
            sent += 1
            if rate or sent % 256 == 0:
                now = pace(time.monotonic())
                if stopped(now):
                    break
                if now - last_t >= progress_every:
                    report(now)
    sender.flush(flush_timeout)
    now = time.monotonic()
    el = max(now - t0, 1e-9)
    final = Progress(sent, el, sent / el, sent / el, fleet.now, True)
    if progress is not None:
        progress(final)
    return final


# ------------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m citybase.iot.simulator",
                                description="Simulated IoT devices sending readings to citybase.")
    p.add_argument("--devices", type=int, default=100, help="devices to plan when no --tokens file is given")
    p.add_argument("--tokens", type=Path, help="provisioned devices (JSON, JSON lines or CSV: id, type, token, "
                                                "lon, lat); without it, tokens are fakes the ingest refuses")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--mqtt", metavar="URL", help="e.g. mqtt://127.0.0.1:1883")
    out.add_argument("--http", metavar="URL", help="the citybase server, e.g. http://127.0.0.1:8000")
    out.add_argument("--dry-run", action="store_true", help="generate and count, send nothing")
    p.add_argument("--topic-prefix", default="citybase/iot")
    p.add_argument("--batch", type=int, default=200, help="messages per HTTP post")
    p.add_argument("--rate", type=float, help="at most this many messages per second")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--district", default="310104")
    p.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("--backfill", type=float, default=0.0,
                   help="start the simulated clock this many hours ago (with --time-scale, replayed fast)")
    p.add_argument("--fast", action="store_true", help="bench: no real time, as fast as possible (or --rate)")
    p.add_argument("--dropout", type=float, default=0.01)
    return p


def simulate(*, devices: int = 100, tokens: Path | None = None, mqtt: str | None = None, http: str | None = None,
             topic_prefix: str = "citybase/iot", batch: int = 200, rate: float | None = None,
             duration: float | None = None, seed: int = 1, district: str = "310104", time_scale: float = 1.0,
             backfill: float = 0.0, fast: bool = False, dropout: float = 0.01,
             say: Callable[[str], None] | None = None, stop_event: threading.Event | None = None) -> Progress:
    """The command line's work, callable from ``citybase simulate`` too: build the fleet (provisioned devices
    from ``tokens``, else ``devices`` planned with fake tokens), the sender (MQTT, HTTP, or none), and run."""
    if tokens:
        specs = load_specs(tokens)
    else:
        specs = [DeviceSpec(d.device_id, d.type_code, fake_token(d.device_id, seed), d.lon, d.lat)
                 for d in plan_devices(devices, seed, district)]
    say = say or (lambda line: print(line, file=sys.stderr))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=backfill)
    fleet = Fleet(specs, seed=seed, start=start, time_scale=time_scale, dropout=dropout)
    sender: Any = (MqttSender(mqtt, topic_prefix) if mqtt else
                   HttpSender(http, batch_size=batch) if http else NullSender())
    stop = stop_event or threading.Event()

    def show(p: Progress) -> None:
        say(f"{p.sent:>10} sent  {p.per_second:>9.0f}/s  (avg {p.average:.0f}/s)  "
            f"simulated {p.sim_time:%Y-%m-%d %H:%M:%S}Z")

    say(f"{len(specs)} devices, about {fleet.natural_rate():.1f} messages per simulated second")
    try:
        # a bench replaying the past stops at the present: later readings would be refused as from the future
        return run(fleet, sender, rate, duration, stop, show, realtime=not fast,
                   until=datetime.now(UTC) if fast and backfill else None)
    except KeyboardInterrupt:
        stop.set()
        return Progress(0, 0.0, 0.0, 0.0, fleet.now, True)
    finally:
        sender.close()


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    simulate(devices=a.devices, tokens=a.tokens, mqtt=a.mqtt, http=a.http, topic_prefix=a.topic_prefix,
             batch=a.batch, rate=a.rate, duration=a.duration, seed=a.seed, district=a.district,
             time_scale=a.time_scale, backfill=a.backfill, fast=a.fast, dropout=a.dropout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
