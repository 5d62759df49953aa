"""Events of intake. A report taken in is published by the workflow's first step,
``citybase.ops.incident.receive`` (``ops.workflow.events.IncidentStep``); intake publishes nothing of its
own. It consumes the IoT alarms (docs/iot.md "Events"), whose shapes are declared here so the consumer and its
tests agree; ``intake.alarms`` says what it does with each."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from citybase.ops.intake.alarms import ALARMS, CLEARED, RAISED

CONSUMES = ALARMS


class AlarmRaised(BaseModel):
    """``citybase.iot.alarm.raised``: a rule's condition held (``intake.alarms.handle_alarm`` reads it)."""

    model_config = ConfigDict(extra="allow")

    alarm_id: str | None = None  # the incident keeps it (source_ref); absent only from older producers
    alarm_type: str  # a key of catalogue.defaults.ALARM_CATEGORIES when incident is true
    incident: bool = True  # false: an alarm for the device page only, no incident
    lon: float
    lat: float
    device_id: str | None = None
    device_type: str | None = None
    department_id: int | None = None  # the owning department (registry); routing decides the incident's own
    department: str | None = None  # its short name (docs/iot.md), when a producer sends that instead
    severity: str | None = None  # critical | major | minor | warning (→ priority when none is given)
    rule: str | None = None
    attribute: str | None = None
    value: float | str | bool | None = None
    raised_at: str | None = None  # ISO 8601
    description: str | None = None
    priority: str | None = None  # urgent | normal | low; default from the severity, else urgent


class AlarmCleared(BaseModel):
    """``citybase.iot.alarm.cleared``: the value came back past the clear level, or a person cleared it; noted on
    the incident the alarm made."""

    model_config = ConfigDict(extra="allow")

    alarm_id: str
    alarm_type: str | None = None
    device_id: str | None = None
    value: float | str | None = None
    cleared_at: str | None = None  # ISO 8601
    how: str | None = None  # auto | manual
    by: str | None = None  # who cleared it, when manual


ALARM_EVENTS: dict[str, type[BaseModel]] = {RAISED: AlarmRaised, CLEARED: AlarmCleared}  # consumed, by subject
EVENTS: dict[str, type[BaseModel]] = {}  # published by intake itself: none
