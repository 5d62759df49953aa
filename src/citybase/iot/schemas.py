"""API shapes of the IoT domain. A water meter of an elderly person living alone is at their home: for a role
that does not see personal data in full its place is shown to about 100 m (three decimals), never exactly."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from citybase.core.i18n import from_json, render
from citybase.core.schemas import Id
from citybase.core.timeutil import to_shanghai
from citybase.iot.models import Alarm, DeadLetter, Device, Feed
from citybase.iot.types import DEVICE_TYPES, DeviceType, shown


def _t(v: datetime | None) -> datetime | None:
    """Stored UTC (naive from SQLite), shown in Asia/Shanghai."""
    return to_shanghai(v) if v is not None else None


def _window(readings: Any) -> list[Any]:
    """An alarm's readings [time, value], their times shown in Asia/Shanghai like every other time."""
    out = []
    for item in readings or []:
        try:
            out.append([_t(datetime.fromisoformat(item[0])).isoformat(), item[1]])  # type: ignore[union-attr]
        except (TypeError, ValueError, IndexError):
            out.append(item)
    return out


PRIVATE_TYPES = frozenset({"watermeter"})  # devices at a person's home


def coarse(type_code: str, lon: float, lat: float, precise: bool) -> tuple[float, float]:
    if precise or type_code not in PRIVATE_TYPES:
        return lon, lat
    return round(lon, 3), round(lat, 3)


class AttributeRead(BaseModel):
    name: str
    title: str
    unit: str | None = Field(description="UN/CEFACT common code")
    min: float | None
    max: float | None
    values: list[str]


class RuleRead(BaseModel):
    key: str
    kind: Literal["threshold", "rate", "silence"]
    title: str
    alarm_type: str
    attribute: str | None
    above: float | None
    below: float | None
    equals: list[str]
    clear: float | None
    duration: float
    severity: str
    incident: bool


class DeviceTypeRead(BaseModel):
    code: str
    sdm_type: str = Field(description="the Smart Data Models entity type in the twin")
    title: str
    department: str
    interval: float = Field(description="seconds between readings")
    offline_after: float
    attributes: list[AttributeRead]
    rules: list[RuleRead]

    @classmethod
    def of(cls, t: DeviceType) -> DeviceTypeRead:
        return cls(code=t.code, sdm_type=t.sdm_type, title=shown(t.title), department=t.department, interval=t.interval,
                   offline_after=t.offline_after,
                   attributes=[AttributeRead(name=a.name, title=shown(a.title), unit=a.unit, min=a.min, max=a.max,
                                             values=list(a.values)) for a in t.attributes],
                   rules=[RuleRead(key=r.key, kind=r.kind, title=shown(r.title), alarm_type=r.alarm_type, attribute=r.attribute,
                                   above=r.above, below=r.below, equals=list(r.equals), clear=r.clear,
                                   duration=r.duration, severity=r.severity, incident=r.incident) for r in t.rules])


class DeviceWrite(BaseModel):
    device_id: str = Field(max_length=64, description="letters, digits, _ . - (e.g. flood-310104-000012)")
    type: str = Field(max_length=16, description="a device type code from GET /api/v1/iot/types")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    model: str = Field("", max_length=64)
    name: str = Field("", max_length=100)
    department: str | None = Field(None, max_length=64, description="code or name; default the type's department")
    secret: str | None = Field(None, min_length=16, max_length=128, description="a factory-set secret; else generated")


class DeviceRead(BaseModel):
    device_id: str
    type: str
    type_title: str
    sdm_type: str
    entity_id: str = Field(description="the device's entity in the twin (/ngsi-ld/v1/entities/{id})")
    model: str
    name: str
    department_id: int | None
    lon: float
    lat: float
    grid_code: str | None
    state: Literal["online", "offline", "decommissioned"]
    last_seen_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, d: Device, *, precise: bool = False) -> DeviceRead:
        t = DEVICE_TYPES[d.type_code]
        lon, lat = coarse(d.type_code, d.lon, d.lat, precise)
        return cls(device_id=d.device_id, type=d.type_code, type_title=shown(t.title), sdm_type=t.sdm_type,
                   entity_id=f"urn:ngsi-ld:{t.sdm_type}:{d.device_id}", model=d.model, name=d.name,
                   department_id=d.department_id, lon=lon, lat=lat, grid_code=d.grid_code,
                   state=d.state, last_seen_at=_t(d.last_seen_at), created_at=_t(d.created_at))  # type: ignore[arg-type]


class DeviceProvisioned(DeviceRead):
    secret: str = Field(description="shown once: the device sends it as its token")


class ProvisionResult(BaseModel):
    created: list[DeviceProvisioned]


class ReadingIn(BaseModel):
    """One message of the HTTP ingest (docs/iot.md): the device, its token, and ``t``/``v`` or ``readings``."""

    model_config = {"extra": "allow"}

    device: str = Field(max_length=64)
    token: Any = None
    t: Any = None
    v: Any = None
    readings: Any = None


class RefusalRead(BaseModel):
    reason_code: str
    reason: str


class MessageOutcome(BaseModel):
    device: str | None
    accepted: int = Field(description="datapoints stored")
    duplicates: int = Field(description="datapoints already stored before (a repeat): not stored twice")
    refused: list[RefusalRead]


class IngestOutcome(BaseModel):
    accepted: int
    duplicates: int
    refused: int
    alarms_raised: list[int]
    alarms_cleared: list[int]
    messages: list[MessageOutcome]


class ReadingRead(BaseModel):
    attr: str
    t: datetime
    value: float | str | None

    @classmethod
    def of(cls, attr: str, t: datetime, value: float | str | None) -> ReadingRead:
        return cls(attr=attr, t=_t(t), value=value)  # type: ignore[arg-type]


class DeviceDetail(BaseModel):
    device: DeviceRead
    latest: dict[str, ReadingRead]
    readings: list[ReadingRead]


class AlarmRead(BaseModel):
    id: int
    device_id: str
    device_type: str
    device_name: str
    rule: str
    rule_title: str
    alarm_type: str
    severity: str
    state: Literal["active", "acknowledged", "cleared"]
    attribute: str | None
    value: float | str | None
    readings: list[Any] = Field(description="the readings that caused it: [time, value]")
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None = Field(description="None when the readings cleared it")
    clear_value: float | None
    lon: float
    lat: float
    incident: dict[str, Any] | None = Field(None, description="the incident it became, if any (id, code, status)")

    @classmethod
    def of(cls, a: Alarm, d: Device, *, precise: bool = False, incident: dict[str, Any] | None = None) -> AlarmRead:
        t = DEVICE_TYPES.get(d.type_code)
        rule = next((r for r in t.rules if r.key == a.rule), None) if t else None
        lon, lat = coarse(d.type_code, d.lon, d.lat, precise)
        return cls(id=a.id, device_id=d.device_id, device_type=d.type_code, device_name=d.name or d.device_id,
                   rule=a.rule, rule_title=shown(rule.title) if rule else a.rule, alarm_type=a.alarm_type,
                   severity=a.severity, state=a.state, attribute=a.attribute,  # type: ignore[arg-type]
                   value=a.value if a.text is None else a.text, readings=_window(a.readings), raised_at=_t(a.raised_at),
                   acknowledged_at=_t(a.acknowledged_at), acknowledged_by=a.acknowledged_by, cleared_at=_t(a.cleared_at),
                   cleared_by=a.cleared_by, clear_value=a.clear_value, lon=lon, lat=lat, incident=incident)


class DeadLetterRead(BaseModel):
    id: int
    device_id: str | None
    reason_code: str
    reason: str
    payload: str
    via: str
    received_at: datetime

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterRead:
        try:
            reason = render(from_json(json.loads(d.reason))) or ""
        except (ValueError, TypeError):
            reason = d.reason
        return cls(id=d.id, device_id=d.device_id, reason_code=d.reason_code, reason=reason, payload=d.payload,
                   via=d.via, received_at=_t(d.received_at))


class HealthRead(BaseModel):
    type: str
    type_title: str
    department_id: int | None
    department: str | None
    total: int
    online: int
    offline: int
    offline_share: float


class FeedWrite(BaseModel):
    name: str = Field(max_length=64)
    department: str | None = Field(None, max_length=64)
    type: str | None = Field(None, max_length=16)
    area_code: str | None = Field(None, max_length=32, description="a grid code or the prefix of an area's codes")
    url: str | None = Field(None, max_length=1024, description="a webhook (signed like the incident webhooks); "
                                                               "none: the bus subject citybase.iot.feed.<name>")


class FeedRead(BaseModel):
    id: Id
    name: str
    department_id: int | None
    type: str | None
    area_code: str | None
    url: str | None
    subject: str
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, f: Feed) -> FeedRead:
        return cls(id=f.id, name=f.name, department_id=f.department_id, type=f.type_code, area_code=f.area_code,
                   url=f.url, subject=f"citybase.iot.feed.{f.name}", active=f.active, created_at=_t(f.created_at))


class FeedCreated(FeedRead):
    secret: str | None = Field(description="shown once: verifies the webhook's signature")
