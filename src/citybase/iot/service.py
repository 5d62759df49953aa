"""The IoT domain's promises: devices provisioned (also as twin entities), readings checked and written once,
rules evaluated, alarms raised, acknowledged and cleared, readings routed to departments (前端分流), device
health computed live.

:func:`ingest` is the one path every reading takes (MQTT through the bridge and the ingest workers, HTTP at
once): each message checked against its device (credentials) and type (attributes, units, ranges, time),
what is wrong kept in the dead letters with its reason, the rest written in one batch and told apart from
repeats (``iot.repository.insert_readings``), the twin updated once per device with every new reading in its
history, the rules advanced, events queued in the outbox — all in the caller's transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, InvalidInput, NotFound
from citybase.core.i18n import Msg, to_json
from citybase.core.timeutil import as_utc, utcnow
from citybase.geo import service as geo
from citybase.iot import events, rules
from citybase.iot.models import Alarm, Device, Feed, RuleState
from citybase.iot.repository import IotRepository
from citybase.iot.types import DEVICE_TYPES, DeviceType, Rule, shown
from citybase.kernel import outbox
from citybase.kernel.runtime import invalidate
from citybase.ops.intake import service as intake
from citybase.registry import service as registry
from citybase.twin import service as twin

DEVICE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FUTURE_SKEW = timedelta(minutes=5)
TOKEN_FIELD = re.compile(r'("token"\s*:\s*")[^"]*(")')
CACHE = "iot.devices"
FEEDS_CACHE = "iot.feeds"
FEED_BATCH = 1000  # readings per feed event
DEAD_LETTER_REPEAT = timedelta(hours=1)  # the same refusal of the same message within this is kept once


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def entity_id(dtype: DeviceType, device_id: str) -> str:
    return f"urn:ngsi-ld:{dtype.sdm_type}:{device_id}"


def twin_call() -> twin.Call:
    return twin.city_call()


# ------------------------------------------------------------------------------ the in-process directory


def _utc(t: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite gives them back naive)."""
    return as_utc(t) if t is not None else None


@dataclass
class Known:
    """What the ingest needs of a device, kept in memory (dropped on every change by the ``iot.devices`` cache)."""

    pk: int
    device_id: str
    type_code: str
    secret_hash: str
    department_id: int | None
    lon: float
    lat: float
    grid_code: str | None
    state: str
    last_seen_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Known:
        return cls(row.id, row.device_id, row.type_code, row.secret_hash, row.department_id, row.lon, row.lat,
                   row.grid_code, row.state, _utc(row.last_seen_at))


class Directory:
    """Devices by id, loaded once per process and dropped when any process provisions or decommissions one; a
    device not in it is looked up in the database before a message is refused (a device provisioned a moment
    ago by another process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.devices: dict[str, Known] | None = None

    def forget(self) -> None:
        with self.lock:
            self.devices = None

    def get(self, session: Session, device_id: str) -> Known | None:
        devices = self.devices
        if devices is None:
            with self.lock:
                if self.devices is None:
                    self.devices = {r.device_id: Known.of(r) for r in IotRepository(session).device_rows()}
                devices = self.devices
        known = devices.get(device_id)
        if known is None:
            row = IotRepository(session).device_row(device_id)
            if row is not None:
                known = devices[device_id] = Known.of(row)
        return known


DIRECTORY = Directory()


class FeedIndex:
    """The active feeds, loaded once per process (dropped on every change by the ``iot.feeds`` cache)."""

    def __init__(self) -> None:
        self.feeds: list[Any] | None = None

    def forget(self) -> None:
        self.feeds = None

    def get(self, session: Session) -> list[Any]:
        if self.feeds is None:
            self.feeds = [(f.id, f.name, f.department_id, f.type_code, f.area_code) for f in IotRepository(session).feeds()]
        return self.feeds


FEEDS = FeedIndex()


# ------------------------------------------------------------------------------------------- devices


@dataclass
class NewDevice:
    device_id: str
    type_code: str
    lon: float
    lat: float
    model: str = ""
    name: str = ""
    department: str | None = None  # a department's GB 32100 code, name or short name; default the type's
    secret: str | None = None  # given by the caller (a factory-set key), else generated


def _departments(session: Session) -> tuple[dict[str, int], dict[int, str]]:
    """The departments read once: id by code, name and short name; name by id."""
    keys: dict[str, int] = {}
    names: dict[int, str] = {}
    for d in registry.list_departments(session=session):
        names[d.id] = d.name
        for key in (d.code, d.name, d.short_name):
            if key:
                keys.setdefault(key, d.id)
    return keys, names


def _department_of(depts: dict[str, int], name: str | None, dtype: DeviceType) -> int | None:
    wanted = name or dtype.department
    if wanted in depts:
        return depts[wanted]
    for key, did in depts.items():
        if key.endswith(wanted):
            return did
    if name:
        raise InvalidInput(Msg('no department {name!r}', name=name),
                           fix=Msg('Give a department code or name from GET /api/v1/departments.'))
    return None


def _check_new(d: NewDevice) -> DeviceType:
    if not isinstance(d.device_id, str) or not DEVICE_ID.match(d.device_id):
        raise InvalidInput(Msg('device id {device_id!r} is not 1-64 letters, digits, _ . -', device_id=str(d.device_id)[:80]),
                           fix=Msg('Use an id like flood-310104-000012.'), field="device_id")
    dtype = DEVICE_TYPES.get(d.type_code)
    if dtype is None:
        raise InvalidInput(Msg('unknown device type {type!r}; known: {items}', type=d.type_code,
                               items=", ".join(DEVICE_TYPES)), fix=Msg('List the types with GET /api/v1/iot/types.'),
                           field="type")
    if not (-180 <= d.lon <= 180 and -90 <= d.lat <= 90):
        raise InvalidInput(Msg('({lon}, {lat}) is not a WGS-84 point', lon=d.lon, lat=d.lat),
                           fix=Msg('Give lon in [-180, 180] and lat in [-90, 90].'), field="location")
    return dtype


def device_entity(dtype: DeviceType, *, device_id: str, name: str, lon: float, lat: float, grid_code: str | None,
                  state: str, department: str | None) -> dict[str, Any]:
    """The device as its Smart Data Models entity in the twin (no readings yet)."""
    body: dict[str, Any] = {
        "id": entity_id(dtype, device_id), "type": dtype.sdm_type,
        "name": {"type": "Property", "value": name or device_id},
        "deviceId": {"type": "Property", "value": device_id},
        "deviceType": {"type": "Property", "value": dtype.code},
        "deviceState": {"type": "Property", "value": state},
        "controlledProperty": {"type": "Property", "value": [a.name for a in dtype.attributes]},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}}
    if department:
        body["department"] = {"type": "Property", "value": department}
    if grid_code:
        body["containedInPlace"] = {"type": "Relationship", "object": f"urn:ngsi-ld:AdministrativeArea:{grid_code}",
                                    "objectType": "AdministrativeArea"}
    return body


def provision(*, session: Session, devices: Sequence[NewDevice]) -> list[tuple[Device, str]]:
    """Register devices (all or none): each located in its grid, its secret hashed (the secret is returned
    once, here), its twin entity created, ``citybase.iot.device.provisioned`` queued."""
    if not devices:
        return []
    repo = IotRepository(session)
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInput(Msg('device {device_id!r} is given twice', device_id=dup), fix=Msg('Give each device once.'))
    existing = repo.devices_by_ids(ids)
    if existing:
        first = next(iter(existing))
        raise Conflict(Msg('device {device_id!r} exists already', device_id=first),
                       fix=Msg('Choose another id, or decommission the old device first.'))
    depts, names = _departments(session)
    now = utcnow()
    rows, secrets_out, entities = [], [], []
    for d in devices:
        dtype = _check_new(d)
        dept = _department_of(depts, d.department, dtype)
        try:
            grid = geo.locate(session=session, lon=d.lon, lat=d.lat).grid.code
        except NotFound:
            grid = None  # outside the district's grids: kept, shown on the map, not in any area's figures
        secret = d.secret or secrets.token_urlsafe(24)
        secrets_out.append(secret)
        rows.append({"device_id": d.device_id, "type_code": dtype.code, "model": d.model[:64], "name": (d.name or "")[:100],
                     "department_id": dept, "lon": d.lon, "lat": d.lat, "grid_code": grid,
                     "secret_hash": hash_secret(secret), "state": "online", "last_seen_at": None,
                     "created_at": now, "decommissioned_at": None})
        entities.append(device_entity(dtype, device_id=d.device_id, name=d.name, lon=d.lon, lat=d.lat, grid_code=grid,
                                      state="online", department=names.get(dept) if dept else None))
    for i in range(0, len(rows), 1000):
        repo.add_devices(rows[i:i + 1000])
    call = twin_call()
    for i in range(0, len(entities), 500):
        twin.batch_upsert(session=session, call=call, items=entities[i:i + 500], update_only=False)
    stored = repo.devices_by_ids(ids)
    for d in devices:
        row = stored[d.device_id]
        outbox.queue(session, events.DEVICE_PROVISIONED, events.DeviceChanged(
            device_id=row.device_id, type=row.type_code, state=row.state, department_id=row.department_id,
            grid_code=row.grid_code).model_dump())
    invalidate(session, CACHE)
    return [(stored[d.device_id], s) for d, s in zip(devices, secrets_out, strict=True)]


def list_existing(*, session: Session, device_ids: Sequence[str]) -> list[str]:
    """Which of these device ids are provisioned."""
    return list(IotRepository(session).devices_by_ids(list(device_ids)))


def get_device(*, session: Session, device_id: str) -> Device:
    d = IotRepository(session).device(device_id)
    if d is None:
        raise NotFound(Msg('no device {device_id!r}', device_id=str(device_id)[:80]),
                       fix=Msg('List devices with GET /api/v1/iot/devices.'))
    return d


def list_devices(*, session: Session, type_code: str | None = None, state: str | None = None,
                 department_id: int | None = None, area: str | None = None, q: str | None = None, page: int = 1,
                 page_size: int = 50) -> tuple[list[Device], int]:
    return IotRepository(session).list_devices(type_code=type_code, state=state, department_id=department_id,
                                               grid_prefix=area, q=q, page=page, page_size=page_size)


def device_map(*, session: Session, type_code: str | None = None, state: str | None = None,
               department_id: int | None = None, limit: int = 20000) -> dict[str, Any]:
    """Devices as a GeoJSON FeatureCollection (points with id, type and state), for the map."""
    rows = IotRepository(session).map_points(type_code=type_code, state=state, department_id=department_id, limit=limit)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
         "properties": {"id": r.device_id, "type": r.type_code, "state": r.state, "name": r.name}} for r in rows]}


def decommission(*, session: Session, device_id: str) -> Device:
    d = get_device(session=session, device_id=device_id)
    if d.state == "decommissioned":
        return d
    d.state, d.decommissioned_at = "decommissioned", utcnow()
    _set_twin_state(session, d, "decommissioned")
    outbox.queue(session, events.DEVICE_DECOMMISSIONED, events.DeviceChanged(
        device_id=d.device_id, type=d.type_code, state=d.state, department_id=d.department_id,
        grid_code=d.grid_code).model_dump())
    invalidate(session, CACHE)
    return d


def rotate_secret(*, session: Session, device_id: str) -> str:
    """A new secret for the device (the old one stops working); returned once."""
    d = get_device(session=session, device_id=device_id)
    secret = secrets.token_urlsafe(24)
    d.secret_hash = hash_secret(secret)
    invalidate(session, CACHE)
    return secret


def _set_twin_state(session: Session, d: Any, state: str) -> None:
    _set_twin_states(session, [d], state)


def _set_twin_states(session: Session, devices: Sequence[Any], state: str) -> None:
    """The devices' ``deviceState`` in the twin, in batches (a sweep may take thousands offline at once)."""
    items = [{"id": entity_id(DEVICE_TYPES[d.type_code], d.device_id), "type": DEVICE_TYPES[d.type_code].sdm_type,
              "deviceState": {"type": "Property", "value": state}} for d in devices]
    for i in range(0, len(items), 500):
        twin.batch_upsert(session=session, call=twin_call(), update_only=True, items=items[i:i + 500])


def readings(*, session: Session, device: Device, attr: str | None = None, since: datetime | None = None,
             limit: int = 500) -> list[Any]:
    return IotRepository(session).readings(device.id, attr=attr, since=since, limit=limit)


def health(*, session: Session) -> list[dict[str, Any]]:
    """Devices by type and department: how many, how many offline, the offline share (live, one aggregate)."""
    _, names = _departments(session)
    out = []
    for type_code, dept, total, online, offline in IotRepository(session).health():
        dtype = DEVICE_TYPES.get(type_code)
        out.append({"type": type_code, "type_title": shown(dtype.title) if dtype else type_code, "department_id": dept,
                    "department": names.get(dept), "total": int(total), "online": int(online or 0),
                    "offline": int(offline or 0), "offline_share": round((offline or 0) / total, 4) if total else 0.0})
    return out


# -------------------------------------------------------------------------------------------- ingest


@dataclass
class Message:
    """One message as it arrived: the device its topic (or HTTP body) names, the payload, the channel."""

    device: str | None
    payload: str | bytes | dict[str, Any]
    via: str = "mqtt"
    received_at: datetime = field(default_factory=utcnow)
    refused: tuple[str, Msg] | None = None  # refused before it is read (reason code, reason): a malformed bus event


@dataclass
class MessageResult:
    device: str | None
    accepted: int = 0  # datapoints new
    duplicates: int = 0  # datapoints already stored (a repeat)
    refused: list[dict[str, str]] = field(default_factory=list)  # {reason_code, reason} per refusal


@dataclass
class IngestResult:
    messages: list[MessageResult] = field(default_factory=list)
    alarms_raised: list[int] = field(default_factory=list)
    alarms_cleared: list[int] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(m.accepted for m in self.messages)

    @property
    def duplicates(self) -> int:
        return sum(m.duplicates for m in self.messages)

    @property
    def refused(self) -> int:
        return sum(len(m.refused) for m in self.messages)


class _Refusal(Exception):
    def __init__(self, code: str, reason: Msg) -> None:
        super().__init__(str(reason))
        self.code, self.reason = code, reason


def _scrub(text: str) -> str:
    """The payload as kept in a dead letter: the device's secret never stored."""
    return TOKEN_FIELD.sub(r"\1***\2", text)[:20000]


def _time(raw: Any, now: datetime) -> datetime:
    if not isinstance(raw, str):
        raise _Refusal("bad_time", Msg('reading time "t" must be an ISO 8601 string with an offset'))
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _Refusal("bad_time", Msg('reading time {t!r} is not ISO 8601', t=raw[:40])) from None
    if at.tzinfo is None:
        raise _Refusal("bad_time", Msg('reading time {t!r} has no offset (write Z for UTC)', t=raw[:40]))
    at = at.astimezone(UTC)
    if at > now + FUTURE_SKEW:
        raise _Refusal("future_time", Msg('reading time {t} is in the future', t=raw[:40]))
    return at


def _value(dtype: DeviceType, name: Any, v: Any) -> tuple[float | None, str | None]:
    attr = dtype.attribute(name) if isinstance(name, str) else None
    if attr is None:
        raise _Refusal("unknown_attribute", Msg('{type} has no attribute {name!r}; it has: {items}', type=dtype.code,
                                                name=str(name)[:40], items=", ".join(a.name for a in dtype.attributes)))
    if attr.values:
        if not isinstance(v, str) or v not in attr.values:
            raise _Refusal("not_allowed", Msg('{name} must be one of {items}, not {value!r}', name=attr.name,
                                              items=", ".join(attr.values), value=str(v)[:40]))
        return None, v
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v in (float("inf"), float("-inf")):
        raise _Refusal("bad_value", Msg('{name} must be a number, not {value!r}', name=attr.name, value=str(v)[:40]))
    if (attr.min is not None and v < attr.min) or (attr.max is not None and v > attr.max):
        raise _Refusal("out_of_range", Msg('{name} = {value} is outside its valid range {min}–{max} {unit}',
                                           name=attr.name, value=v, min=attr.min, max=attr.max, unit=attr.unit or ""))
    return float(v), None


def _unit(dtype: DeviceType, name: str, given: Any) -> None:
    """A reading may say its unit (``"u": {attribute: UN/CEFACT code}``); one other than declared is refused,
    never converted (a device configured in the wrong unit must be found, not silently corrected)."""
    if given is None:
        return
    declared = dtype.attribute(name).unit  # type: ignore[union-attr] - _value found the attribute
    if given != declared:
        raise _Refusal("wrong_unit", Msg('{name} is declared in {declared}, the reading says {given!r}', name=name,
                                         declared=declared or "—", given=str(given)[:20]))


def _payload_of(m: Message) -> tuple[dict[str, Any], str]:
    raw = m.payload
    if isinstance(raw, dict):
        return raw, json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refusal("not_utf8", Msg('the payload is not UTF-8 text')) from None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, and an integer of more than 4,300 digits
        raise _Refusal("not_json", Msg('the payload is not JSON')) from None
    if not isinstance(obj, dict):
        raise _Refusal("bad_shape", Msg('the payload must be a JSON object with "token" and "t"/"v" or "readings"'))
    return obj, raw


def _check(session: Session, m: Message, now: datetime, out: MessageResult, dead: list[dict[str, Any]],
           points: list[tuple[Any, ...]]) -> Known | None:
    """Check one message; append its datapoints (pk, attr, time, value, text, received, message) to ``points``."""
    text = m.payload if isinstance(m.payload, str) else ""

    def refuse(code: str, reason: Msg, payload: str | None = None, device: str | None = None) -> None:
        out.refused.append({"reason_code": code, "reason": str(reason)})
        dead.append({"device_id": (device if device is not None else m.device or None) and str(device or m.device)[:64],
                     "reason_code": code, "reason": json.dumps(to_json(reason), ensure_ascii=False),
                     "payload": _scrub(payload if payload is not None else text), "via": m.via[:8],
                     "received_at": m.received_at})

    try:
        if m.refused is not None:
            raise _Refusal(*m.refused)
        obj, text = _payload_of(m)
        claimed = obj.get("device")
        if m.device is None and isinstance(claimed, str):
            m.device = claimed
        if not isinstance(m.device, str) or not m.device:
            raise _Refusal("unknown_device", Msg('the message names no device'))
        if claimed is not None and claimed != m.device:
            raise _Refusal("wrong_device", Msg('a message on the topic of device {device} claims to be {claimed}',
                                               device=m.device[:64], claimed=str(claimed)[:64]))
        known = DIRECTORY.get(session, m.device)
        if known is None:
            raise _Refusal("unknown_device", Msg('no device {device!r} is provisioned', device=m.device[:64]))
        token = obj.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(hash_secret(token), known.secret_hash):
            raise _Refusal("bad_token", Msg('the token does not match device {device}', device=m.device))
        if known.state == "decommissioned":
            raise _Refusal("decommissioned", Msg('device {device} is decommissioned', device=m.device))
        if "readings" in obj:
            items = obj["readings"]
            if not isinstance(items, list) or not items:
                raise _Refusal("bad_shape", Msg('"readings" must be a non-empty list of readings with "t" and "v"'))
        elif "v" in obj:
            items = [{"t": obj.get("t"), "v": obj["v"]}]
        else:
            raise _Refusal("bad_shape", Msg('the message has neither "v" nor "readings"'))
    except _Refusal as r:
        refuse(r.code, r.reason)
        return None
    dtype = DEVICE_TYPES[known.type_code]
    for item in items:
        try:
            if not isinstance(item, dict) or not isinstance(item.get("v"), dict) or not item["v"]:
                raise _Refusal("bad_shape", Msg('a reading must be an object with "t" (its time) and "v" (attribute: value)'))
            at = _time(item.get("t"), now)
        except _Refusal as r:
            refuse(r.code, r.reason, json.dumps(item, ensure_ascii=False, default=str)[:20000])
            continue
        units = item.get("u") if isinstance(item.get("u"), dict) else {}
        for name, v in item["v"].items():
            try:
                value, label = _value(dtype, name, v)
                _unit(dtype, name, units.get(name))
            except _Refusal as r:
                refuse(r.code, r.reason, json.dumps({"t": item.get("t"), "v": {name: v}}, ensure_ascii=False, default=str))
                continue
            points.append((known.pk, name, at, value, label, m.received_at, out))
    return known


def ingest(*, session: Session, messages: Sequence[Message], now: datetime | None = None) -> IngestResult:
    """Check, write and evaluate a batch of messages in the session's transaction (see the module doc)."""
    now = now or utcnow()
    result = IngestResult()
    dead: list[dict[str, Any]] = []
    points: list[tuple[Any, ...]] = []
    devices: dict[int, Known] = {}
    for m in messages:
        out = MessageResult(device=m.device)
        result.messages.append(out)
        known = _check(session, m, now, out, dead, points)
        if known is not None:
            devices[known.pk] = known
        out.device = m.device
    repo = IotRepository(session)
    if points:
        repo.lock_devices(list(devices))
        unique: dict[tuple[int, str, datetime], tuple[Any, ...]] = {}
        for p in points:
            key = (p[0], p[1], p[2])
            if key in unique:
                p[6].duplicates += 1
            else:
                unique[key] = p
        new = repo.insert_readings([p[:6] for p in unique.values()])
        fresh: list[tuple[Any, ...]] = []
        for key, p in unique.items():
            if key in new:
                p[6].accepted += 1
                fresh.append(p)
            else:
                p[6].duplicates += 1
        if fresh:
            _after_write(session, repo, devices, fresh, now, result)
    if dead:  # a message carried again (after a bridge's reconnect, in another group) is kept once
        repo.add_dead_letters(repo.unseen_dead_letters(dead, now - DEAD_LETTER_REPEAT))
    return result


def keep_failed(*, session: Session, message: Message, error: BaseException) -> None:
    """Keep a message the ingest raised on (not a refusal: a fault of ours its content triggers) as a dead
    letter with the error as its reason (``ingest_failed``), so that it costs only itself and can be read."""
    text = message.payload if isinstance(message.payload, str) else (
        json.dumps(message.payload, ensure_ascii=False, default=str) if isinstance(message.payload, dict)
        else message.payload.decode("utf-8", "replace"))
    reason = Msg('the ingest could not handle this message ({error})', error=f"{type(error).__name__}: {error}"[:300])
    IotRepository(session).add_dead_letters([{
        "device_id": str(message.device)[:64] if message.device else None, "reason_code": "ingest_failed",
        "reason": json.dumps(to_json(reason), ensure_ascii=False), "payload": _scrub(text), "via": message.via[:8],
        "received_at": message.received_at}])


def _after_write(session: Session, repo: IotRepository, devices: dict[int, Known], fresh: list[tuple[Any, ...]],
                 now: datetime, result: IngestResult) -> None:
    """The new datapoints in the twin, the devices seen, the rules advanced, the feeds served."""
    by_device: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for p in fresh:
        by_device[p[0]].append(p)
    observations = []
    for pk, ps in by_device.items():
        k = devices[pk]
        dtype = DEVICE_TYPES[k.type_code]
        per_attr: dict[str, list[tuple[datetime, Any, str | None]]] = defaultdict(list)
        for p in ps:
            attr = dtype.attribute(p[1])
            per_attr[p[1]].append((p[2], p[3] if p[4] is None else p[4], attr.unit if attr else None))
        observations.append(twin.Observation(entity_id(dtype, k.device_id), dict(per_attr)))
    call = twin_call()
    twin.record_observations(session=session, call=call, observations=observations)
    states = repo.rule_states(list(by_device))
    silent = {pk for (pk, rule), st in states.items() if st.phase == "alarm" and _is_silence(devices[pk], rule)}
    # last seen: a device's row written at most every 30 s, and at once when it comes back from silence
    seen = {pk: now for pk, k in devices.items() if pk in by_device and (
        pk in silent or k.state != "online" or k.last_seen_at is None or (now - k.last_seen_at).total_seconds() > 30)}
    repo.touch_devices(seen)
    for pk in seen:
        devices[pk].last_seen_at = now
    _set_twin_states(session, [devices[pk] for pk in sorted(silent)], "online")
    for pk in sorted(silent):
        k = devices[pk]
        k.state = "online"
        outbox.queue(session, events.DEVICE_ONLINE, events.DeviceChanged(
            device_id=k.device_id, type=k.type_code, state="online", department_id=k.department_id,
            grid_code=k.grid_code).model_dump())
    _evaluate(session, repo, devices, by_device, states, now, result)
    _feed(session, devices, fresh)


def _is_silence(k: Known, rule_key: str) -> bool:
    return any(r.key == rule_key and r.kind == "silence" for r in DEVICE_TYPES[k.type_code].rules)


def _evaluate(session: Session, repo: IotRepository, devices: dict[int, Known], by_device: dict[int, list[tuple[Any, ...]]],
              states: dict[tuple[int, str], RuleState], now: datetime, result: IngestResult) -> None:
    for pk in by_device:
        k = devices[pk]
        dtype = DEVICE_TYPES[k.type_code]
        ps = by_device[pk]
        for rule in dtype.rules:
            if rule.kind == "silence":
                st = states.get((pk, rule.key))
                if st is not None and st.phase == "alarm" and st.alarm_id:
                    _clear(session, repo, st, k, rule, now, None, None, result)
                continue
            pts = sorted(((p[2], p[4] if p[4] is not None else p[3]) for p in ps if p[1] == rule.attribute),
                         key=lambda x: x[0])
            if not pts:
                continue
            row = states.get((pk, rule.key))
            st = rules.State(row.phase, _utc(row.since), row.last_value, _utc(row.last_at)) if row else rules.State()
            actions = rules.evaluate(rule, st, pts)
            if row is None:
                if st.phase == "ok" and rule.kind != "rate" and not actions:
                    continue  # nothing to remember: the usual case writes nothing
                row = RuleState(device_pk=pk, rule=rule.key, phase=st.phase, since=st.since, last_value=st.last_value,
                                last_at=st.last_at, alarm_id=None)
                repo.add_rule_state(row)
                states[(pk, rule.key)] = row
            else:
                row.phase, row.since, row.last_value, row.last_at = st.phase, st.since, st.last_value, st.last_at
            for a in actions:
                if a.kind == "raise":
                    _raise(session, repo, row, k, rule, a, result)
                else:
                    _clear(session, repo, row, k, rule, a.at, a.value, None, result)


def _numeric(v: Any) -> tuple[float | None, str | None]:
    return (float(v), None) if isinstance(v, int | float) else (None, str(v) if v is not None else None)


def _raise(session: Session, repo: IotRepository, row: RuleState, k: Known, rule: Rule, a: rules.Action,
           result: IngestResult) -> Alarm:
    value, text = _numeric(a.value)
    since = a.since or a.at
    window = [[as_utc(r.observed_at).isoformat(), r.value if r.text is None else r.text]
              for r in reversed(repo.readings(k.pk, attr=rule.attribute, since=since, limit=20))] if rule.attribute else []
    if not window:
        window = [[a.at.isoformat(), a.value]]
    alarm = repo.add_alarm(Alarm(device_pk=k.pk, rule=rule.key, alarm_type=rule.alarm_type, severity=rule.severity,
                                 state="active", attribute=rule.attribute, value=value, text=text, readings=window,
                                 raised_at=a.at))
    row.alarm_id = alarm.id
    result.alarms_raised.append(alarm.id)
    dtype = DEVICE_TYPES[k.type_code]
    shown = a.value if a.value is not None else "—"
    unit = dtype.attribute(rule.attribute).unit if rule.attribute and dtype.attribute(rule.attribute) else ""
    outbox.queue(session, events.ALARM_RAISED, events.AlarmRaised(
        alarm_id=str(alarm.id), alarm_type=rule.alarm_type, incident=rule.incident, device_id=k.device_id,
        device_type=k.type_code, department_id=k.department_id, severity=rule.severity, rule=rule.key,
        attribute=rule.attribute, value=a.value, lon=k.lon, lat=k.lat, raised_at=a.at.isoformat(),
        description=f"物联感知告警：{dtype.title} {k.device_id} {rule.title}（读数 {shown}{(' ' + unit) if unit else ''}）"
    ).model_dump())
    return alarm


def _clear(session: Session, repo: IotRepository, row: RuleState, k: Known, rule: Rule, at: datetime, v: Any,
           by: str | None, result: IngestResult) -> None:
    alarm = repo.alarm(row.alarm_id, lock=True) if row.alarm_id else None
    row.phase, row.since, row.alarm_id = "ok", None, None
    if alarm is None or alarm.state == "cleared":
        return
    _close(session, alarm, k.device_id, at, v, by)
    result.alarms_cleared.append(alarm.id)


def _close(session: Session, alarm: Alarm, device_id: str, at: datetime, v: Any, by: str | None) -> None:
    alarm.state, alarm.cleared_at, alarm.cleared_by = "cleared", at, by
    alarm.clear_value = float(v) if isinstance(v, int | float) else None
    outbox.queue(session, events.ALARM_CLEARED, events.AlarmCleared(
        alarm_id=str(alarm.id), alarm_type=alarm.alarm_type, device_id=device_id, value=v,
        cleared_at=at.isoformat(), how="manual" if by else "auto", by=by).model_dump())


def _feed(session: Session, devices: dict[int, Known], fresh: list[tuple[Any, ...]]) -> None:
    """前端分流: each active feed gets the new readings of its department's devices (of its type, in its area),
    one event per feed and batch."""
    feeds = FEEDS.get(session)
    if not feeds:
        return
    for fid, name, dept, type_code, area in feeds:
        items = []
        for p in fresh:
            k = devices[p[0]]
            if (dept is not None and k.department_id != dept) or (type_code and k.type_code != type_code) or \
                    (area and not (k.grid_code or "").startswith(area)):
                continue
            items.append({"device": k.device_id, "type": k.type_code, "attr": p[1],
                          "t": p[2].isoformat().replace("+00:00", "Z"), "v": p[3] if p[4] is None else p[4]})
        for i in range(0, len(items), FEED_BATCH):
            outbox.queue(session, f"{events.FEED_PREFIX}.{name}", events.FeedReadings(
                feed_id=fid, feed=name, readings=items[i:i + FEED_BATCH]).model_dump())


# -------------------------------------------------------------------------------- silence (the timer)


def sweep_silent(*, session: Session, now: datetime | None = None, type_codes: Sequence[str] | None = None) -> list[str]:
    """Devices (of these types; default all) silent past their type's ``silence`` rule go offline, each with an
    alarm; returns their ids."""
    now = now or utcnow()
    repo = IotRepository(session)
    out: list[str] = []
    result = IngestResult()
    for dtype in (DEVICE_TYPES[c] for c in (type_codes or DEVICE_TYPES)):
        rule = next((r for r in dtype.rules if r.kind == "silence"), None)
        if rule is None:
            continue
        silent = repo.silent_devices(dtype.code, now - timedelta(seconds=rule.duration))
        if not silent:
            continue
        states = repo.rule_states([d.id for d in silent])
        for d in silent:
            d.state = "offline"
            k = Known(d.id, d.device_id, d.type_code, d.secret_hash, d.department_id, d.lon, d.lat, d.grid_code,
                      d.state, _utc(d.last_seen_at))
            row = states.get((d.id, rule.key))
            if row is None:
                row = RuleState(device_pk=d.id, rule=rule.key, phase="ok", since=None, last_value=None, last_at=None,
                                alarm_id=None)
                repo.add_rule_state(row)
            if row.phase != "alarm":
                row.phase = "alarm"
                _raise(session, repo, row, k, rule, rules.Action("raise", now, None, _utc(d.last_seen_at or d.created_at)),
                       result)
            outbox.queue(session, events.DEVICE_OFFLINE, events.DeviceChanged(
                device_id=d.device_id, type=d.type_code, state="offline", department_id=d.department_id,
                grid_code=d.grid_code).model_dump())
            out.append(d.device_id)
        _set_twin_states(session, silent, "offline")
    if out:
        invalidate(session, CACHE)
    return out


# ------------------------------------------------------------------------------------------- alarms


def list_alarms(*, session: Session, state: str | None = None, device_id: str | None = None,
                severity: str | None = None, department_id: int | None = None, page: int = 1,
                page_size: int = 50) -> tuple[list[Alarm], int]:
    device_pk = get_device(session=session, device_id=device_id).id if device_id else None
    return IotRepository(session).alarms(state=state, device_pk=device_pk, severity=severity,
                                         department_id=department_id, page=page, page_size=page_size)


def get_alarm(*, session: Session, alarm_id: int, lock: bool = False) -> Alarm:
    a = IotRepository(session).alarm(alarm_id, lock=lock)
    if a is None:
        raise NotFound(Msg('no alarm #{alarm_id}', alarm_id=alarm_id), fix=Msg('List alarms with GET /api/v1/iot/alarms.'))
    return a


def devices_of(*, session: Session, pks: Iterable[int]) -> dict[int, Device]:
    return IotRepository(session).devices_by_pks(sorted(set(pks)))


def acknowledge(*, session: Session, alarm_id: int, by: str) -> Alarm:
    a = get_alarm(session=session, alarm_id=alarm_id, lock=True)
    if a.state != "active":
        raise Conflict(Msg('alarm #{alarm_id} is {state}, not active', alarm_id=alarm_id, state=a.state),
                       fix=Msg('Only an active alarm can be acknowledged.'))
    a.state, a.acknowledged_at, a.acknowledged_by = "acknowledged", utcnow(), by
    outbox.queue(session, events.ALARM_ACKNOWLEDGED, events.AlarmAcknowledged(
        alarm_id=str(a.id), by=by, at=a.acknowledged_at.isoformat()).model_dump())
    return a


def clear(*, session: Session, alarm_id: int, by: str) -> Alarm:
    """A person clears an alarm (the device was repaired); the rule starts again from ``ok``."""
    a = get_alarm(session=session, alarm_id=alarm_id, lock=True)
    if a.state == "cleared":
        raise Conflict(Msg('alarm #{alarm_id} is cleared already', alarm_id=alarm_id),
                       fix=Msg('Reload the alarm list.'))
    d = IotRepository(session).device_by_pk(a.device_pk)
    st = IotRepository(session).rule_states([a.device_pk]).get((a.device_pk, a.rule))
    if st is not None and st.alarm_id == a.id:
        st.phase, st.since, st.alarm_id = "ok", None, None
    _close(session, a, d.device_id if d else "", utcnow(), None, by)
    return a


def dead_letters(*, session: Session, device_id: str | None = None, reason_code: str | None = None, page: int = 1,
                 page_size: int = 50) -> tuple[list[Any], int]:
    return IotRepository(session).dead_letters(device_id=device_id, reason_code=reason_code, page=page,
                                               page_size=page_size)


def dead_letter_counts(*, session: Session) -> dict[str, int]:
    return {code: int(n) for code, n in IotRepository(session).dead_letter_counts()}


def alarm_counts(*, session: Session) -> list[dict[str, Any]]:
    return [{"state": s, "severity": sev, "count": int(n)} for s, sev, n in IotRepository(session).alarm_counts()]


# -------------------------------------------------------------------------------------------- feeds


def list_feeds(*, session: Session) -> list[Feed]:
    return IotRepository(session).feeds(active_only=False)


def create_feed(*, session: Session, name: str, department: str | None, type_code: str | None, area_code: str | None,
                url: str | None) -> Feed:
    repo = IotRepository(session)
    if not re.match(r"^[a-z0-9_-]{1,64}$", name or ""):
        raise InvalidInput(Msg('feed name {name!r} must be 1-64 lower-case letters, digits, _ or -', name=str(name)[:80]),
                           fix=Msg('It becomes the bus subject citybase.iot.feed.<name>.'), field="name")
    if repo.feed_by_name(name):
        raise Conflict(Msg('a feed named {name!r} exists', name=name), fix=Msg('Choose another name.'))
    if type_code and type_code not in DEVICE_TYPES:
        raise InvalidInput(Msg('unknown device type {type!r}; known: {items}', type=type_code, items=", ".join(DEVICE_TYPES)),
                           fix=Msg('List the types with GET /api/v1/iot/types.'), field="type")
    if url and not re.match(r"^https?://", url):
        raise InvalidInput(Msg('a feed URL must be http:// or https://'), fix=Msg('Leave it out to receive the feed on the bus.'),
                           field="url")
    dept = None
    if department:
        dept = _departments(session)[0].get(department)
        if dept is None:
            raise InvalidInput(Msg('no department {name!r}', name=department),
                               fix=Msg('Give a department code or name from GET /api/v1/departments.'), field="department")
    feed = repo.add_feed(Feed(name=name, department_id=dept, type_code=type_code or None, area_code=area_code or None,
                              url=url or None, secret=secrets.token_hex(16) if url else None, active=True,
                              created_at=utcnow()))
    invalidate(session, FEEDS_CACHE)
    return feed


def get_feed(*, session: Session, feed_id: int) -> Feed:
    f = IotRepository(session).feed(feed_id)
    if f is None:
        raise NotFound(Msg('no feed #{feed_id}', feed_id=feed_id), fix=Msg('List feeds with GET /api/v1/iot/feeds.'))
    return f


def delete_feed(*, session: Session, feed_id: int) -> None:
    IotRepository(session).delete_feed(get_feed(session=session, feed_id=feed_id))
    invalidate(session, FEEDS_CACHE)


def reading_count(*, session: Session) -> int:
    return IotRepository(session).reading_count()



def incidents_of(*, session: Session, alarm_ids: Sequence[int]) -> dict[str, dict[str, Any]]:
    """The incidents these alarms became (alarm id as text -> id, code, status, department), asked of the
    incident loop's service."""
    if not alarm_ids:
        return {}
    return intake.incidents_of_alarms(session=session, alarm_ids=[str(i) for i in alarm_ids])
