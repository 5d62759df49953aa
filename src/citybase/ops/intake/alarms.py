"""The IoT channel: the alarms of ``citybase.iot`` (docs/iot.md "Events"), consumed by ``ops-alarms``.

* ``citybase.iot.alarm.raised`` with ``incident`` true (or absent: producers older than the flag) opens an
  incident: alarm type → category (``catalogue.defaults.ALARM_CATEGORIES``), urgent unless the alarm says
  otherwise. The incident keeps the alarm's ``alarm_id`` (``source_ref``, unique), so the same alarm delivered
  again under a new event id finds its incident and opens no second one. ``incident: false`` (an alarm for the
  device page only, such as a device gone offline) is acked unread.
* ``citybase.iot.alarm.cleared`` notes on that incident's timeline that the alarm cleared (and on the incident
  it was merged into, whose handler works the case); the state stays. An alarm that made no incident: acked.
* Any other subject (``acknowledged``, …) is the IoT pages' business: acked unread.

``ignores`` tells the unread ones from the event alone (the consumer's ``skip``: no write transaction). A
message wrong in itself is rejected (``kernel.consumers.Reject``) to the dead-letter store with its reason."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from citybase.bus import Event
from citybase.core.errors import CitybaseError
from citybase.core.i18n import Msg
from citybase.kernel.consumers import Reject
from citybase.ops.catalogue.defaults import ALARM_CATEGORIES
from citybase.ops.intake import service
from citybase.ops.workflow import service as workflow
from citybase.ops.workflow.service import Actor

ALARMS = "citybase.iot.alarm.>"
RAISED = "citybase.iot.alarm.raised"
CLEARED = "citybase.iot.alarm.cleared"
IOT_ACTOR = Actor("iot", roles=frozenset({"system"}))
# An alarm's severity (iot.types.Rule) → the incident's priority, when the alarm names no priority itself.
SEVERITY_PRIORITY = {"critical": "urgent", "major": "urgent", "minor": "normal", "warning": "normal"}
HOW = {"auto": "自动", "manual": "人工"}


def ignores(event: Event) -> bool:
    """True when ops-alarms has nothing to do with the event, as the event alone says: a subject other than
    raised or cleared, or an alarm raised with ``incident: false``."""
    if event.subject == CLEARED:
        return False
    if event.subject != RAISED:
        return True
    return isinstance(event.data, dict) and event.data.get("incident") is False


def handle_alarm(session: Session, event: Event, classifier: Any = None) -> service.IntakeResult | None:
    """Handle one IoT alarm event: a raised alarm becomes an incident (None when it opens none, or its
    incident exists already); a cleared one is noted on its incident's timeline; anything else is ignored."""
    if ignores(event):
        return None
    if not isinstance(event.data, dict):
        raise Reject(Msg('alarm data is not a JSON object'))
    if event.subject == CLEARED:
        _cleared(session, event.data)
        return None
    return _raised(session, event.data, classifier)


def _alarm_id(d: dict[str, Any], *, required: bool) -> str | None:
    value = d.get("alarm_id")
    if value is None and not required:
        return None  # a producer older than alarm ids
    if not isinstance(value, str) or not value:
        raise Reject(Msg('alarm_id must be a non-empty string, not {value!r}', value=value))
    return value


def _raised(session: Session, d: dict[str, Any], classifier: Any) -> service.IntakeResult | None:
    opens = d.get("incident", True)
    if opens is False:
        return None
    if opens is not True:
        raise Reject(Msg('incident must be true or false, not {value!r}', value=opens))
    alarm_id = _alarm_id(d, required=False)
    if alarm_id is not None and service.incident_of_alarm(session=session, alarm_id=alarm_id) is not None:
        return None  # the same alarm again: its incident stands
    alarm = d.get("alarm_type")
    if alarm not in ALARM_CATEGORIES:
        raise Reject(Msg('unknown alarm_type {alarm!r}; known: {items}', alarm=alarm, items=', '.join(sorted(ALARM_CATEGORIES))))
    try:
        lon, lat = float(d["lon"]), float(d["lat"])
    except (KeyError, TypeError, ValueError):
        raise Reject(Msg('alarm lacks numeric lon/lat')) from None
    device = d.get("device_id", "unknown")
    text = d.get("description") or f"物联感知告警：设备 {device} 报告 {alarm}（读数 {d.get('value', '—')}）"
    priority = d.get("priority") if d.get("priority") in ("urgent", "normal", "low") else (
        SEVERITY_PRIORITY.get(d.get("severity"), "urgent"))
    try:
        command = service.IntakeCommand(
            channel="iot", description=str(text)[:2000], category_code=ALARM_CATEGORIES[alarm], lon=lon, lat=lat,
            priority=priority, source_ref=alarm_id)
        return service.submit(session=session, command=command, actor=IOT_ACTOR, classifier=classifier)
    except CitybaseError as exc:
        raise Reject(f"{exc.detail} ({exc.fix})" if exc.fix else exc.detail) from None


def _cleared(session: Session, d: dict[str, Any]) -> None:
    alarm_id = _alarm_id(d, required=True)
    made = service.incident_of_alarm(session=session, alarm_id=alarm_id)
    if made is None:
        return  # the alarm opened no incident (incident: false, or raised before alarms were kept)
    how = HOW.get(d.get("how"))
    if how and d.get("how") == "manual" and d.get("by"):
        how = f"{how}，{d['by']}"
    value = d.get("value")
    note = (f"物联感知告警已解除：{d.get('device_id') or '设备'} 读数 {'—' if value is None else value}"
            + (f"（{how}）" if how else ""))
    facts = {k: d.get(k) for k in ("alarm_id", "alarm_type", "device_id", "value", "cleared_at", "how", "by")}
    # The alarm's own incident, and the one it was merged into (its handler works the case); each once, however
    # often the clearing is delivered. FOR UPDATE on PostgreSQL makes a concurrent delivery wait and then see
    # this note; on SQLite the incident's version makes the later of two fail and be redelivered.
    targets = [made["id"]] + ([made["merged_into"]["id"]] if made["merged_into"] else [])
    for incident_id in targets:
        incident = workflow.get_incident(session=session, incident_id=incident_id, lock=True)
        if not _noted(session, incident_id, alarm_id):
            workflow.alarm_cleared(session=session, incident=incident, actor=IOT_ACTOR, note=note, **facts)


def _noted(session: Session, incident_id: int, alarm_id: str) -> bool:
    """Whether the incident's timeline already says this alarm cleared."""
    for entry in workflow.timeline(session=session, incident_id=incident_id):
        if entry.action == "alarm_cleared":
            try:
                if json.loads(entry.data or "{}").get("alarm_id") == alarm_id:
                    return True
            except (ValueError, AttributeError):
                continue
    return False
