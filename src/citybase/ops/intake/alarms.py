"""The IoT channel: ``citybase.iot.alarm.*`` events become incidents (alarm type → category, urgent by default).
A message wrong in itself is rejected (``kernel.consumers.Reject``) to the dead-letter store with its reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from citybase.bus import Event
from citybase.core.errors import CitybaseError
from citybase.core.i18n import Msg
from citybase.kernel.consumers import Reject
from citybase.ops.catalogue.defaults import ALARM_CATEGORIES
from citybase.ops.intake import service
from citybase.ops.workflow.service import Actor

ALARMS = "citybase.iot.alarm.>"
IOT_ACTOR = Actor("iot", roles=frozenset({"system"}))


def handle_alarm(session: Session, event: Event, classifier: Any = None) -> service.IntakeResult:
    """Turn one IoT alarm into an incident (or a repeat of an open one)."""
    d = event.data
    alarm = d.get("alarm_type")
    if alarm not in ALARM_CATEGORIES:
        raise Reject(Msg('unknown alarm_type {alarm!r}; known: {items}', alarm=alarm, items=', '.join(sorted(ALARM_CATEGORIES))))
    try:
        lon, lat = float(d["lon"]), float(d["lat"])
    except (KeyError, TypeError, ValueError):
        raise Reject(Msg('alarm lacks numeric lon/lat')) from None
    device = d.get("device_id", "unknown")
    text = d.get("description") or f"物联感知告警：设备 {device} 报告 {alarm}（读数 {d.get('value', '—')}）"
    try:
        command = service.IntakeCommand(
            channel="iot", description=str(text)[:2000], category_code=ALARM_CATEGORIES[alarm], lon=lon, lat=lat,
            priority=d.get("priority") if d.get("priority") in ("urgent", "normal", "low") else "urgent")
        return service.submit(session=session, command=command, actor=IOT_ACTOR, classifier=classifier)
    except CitybaseError as exc:
        raise Reject(f"{exc.detail} ({exc.fix})" if exc.fix else exc.detail) from None
