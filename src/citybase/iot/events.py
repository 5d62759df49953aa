"""Events of the IoT domain (through the outbox, in the transaction of the change). ``alarm.raised`` is what the
incident loop turns into an incident (``ops.intake.alarms``); its shape is the one ``ops.intake.events``
declares for what it consumes. Readings themselves enter on ``citybase.iot.ingest`` (the bridge's) and leave
on ``citybase.iot.feed.<name>`` (前端分流)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

INGEST = "citybase.iot.ingest"
ALARM_RAISED = "citybase.iot.alarm.raised"
ALARM_ACKNOWLEDGED = "citybase.iot.alarm.acknowledged"
ALARM_CLEARED = "citybase.iot.alarm.cleared"
DEVICE_PROVISIONED = "citybase.iot.device.provisioned"
DEVICE_DECOMMISSIONED = "citybase.iot.device.decommissioned"
DEVICE_OFFLINE = "citybase.iot.device.offline"
DEVICE_ONLINE = "citybase.iot.device.online"
FEED_PREFIX = "citybase.iot.feed"


class IngestMessage(BaseModel):
    """One device message as the MQTT bridge received it."""

    device: str | None = None  # the device id of the topic
    payload: str | None = None  # the payload as text ...
    payload_b64: str | None = None  # ... or in base64 when it is not UTF-8
    received_at: str | None = None
    topic: str | None = None  # only when the topic is not <prefix>/<device id>/up


class Ingest(BaseModel):
    """The messages the MQTT bridge received within a short window, in the order received (docs/iot.md)."""

    via: str = "mqtt"
    messages: list[IngestMessage]


class AlarmRaised(BaseModel):
    alarm_id: str
    alarm_type: str
    incident: bool
    device_id: str
    device_type: str
    department_id: int | None
    severity: str
    rule: str
    attribute: str | None
    value: Any = None
    lon: float
    lat: float
    raised_at: str
    description: str


class AlarmAcknowledged(BaseModel):
    alarm_id: str
    by: str
    at: str


class AlarmCleared(BaseModel):
    alarm_id: str
    alarm_type: str
    device_id: str
    value: Any = None
    cleared_at: str
    how: str  # auto | manual
    by: str | None = None


class DeviceChanged(BaseModel):
    device_id: str
    type: str
    state: str
    department_id: int | None
    grid_code: str | None


class FeedReadings(BaseModel):
    """New readings for one feed: [{device, type, attr, t, v}]."""

    feed_id: int
    feed: str
    readings: list[dict[str, Any]]


EVENTS: dict[str, type[BaseModel]] = {
    INGEST: Ingest, ALARM_RAISED: AlarmRaised, ALARM_ACKNOWLEDGED: AlarmAcknowledged, ALARM_CLEARED: AlarmCleared,
    DEVICE_PROVISIONED: DeviceChanged, DEVICE_DECOMMISSIONED: DeviceChanged, DEVICE_OFFLINE: DeviceChanged,
    DEVICE_ONLINE: DeviceChanged, FEED_PREFIX + ".*": FeedReadings,
}
