"""Events of intake. A report taken in is published by the workflow's first step,
``citybase.ops.incident.receive`` (``ops.workflow.events.IncidentStep``); intake publishes nothing of its
own. It consumes the IoT alarms, whose shape is declared here so the consumer and its tests agree."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from citybase.ops.intake.alarms import ALARMS

CONSUMES = ALARMS


class AlarmRaised(BaseModel):
    """``citybase.iot.alarm.*`` as the IoT platform publishes it (``intake.alarms.handle_alarm`` reads it)."""

    model_config = ConfigDict(extra="allow")

    alarm_type: str  # a key of catalogue.defaults.ALARM_CATEGORIES
    lon: float
    lat: float
    device_id: str | None = None
    value: float | str | None = None
    description: str | None = None
    priority: str | None = None  # urgent (default) | normal | low


EVENTS: dict[str, type[BaseModel]] = {}  # published by intake itself: none
