"""API shapes of the workflow: incidents with their tasks, timeline and reporters, and the action body.
Statuses are the workflow table's ``Status`` (an enum in the OpenAPI)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from citybase.core.i18n import from_json, render
from citybase.core.masking import mask_name, mask_phone, mask_text
from citybase.core.schemas import Count, Id
from citybase.core.timeutil import utcnow
from citybase.ops.notifications.schemas import ReporterRead, _t
from citybase.ops.workflow import deadlines
from citybase.ops.workflow.models import Incident, Task, TimelineEntry
from citybase.ops.workflow.states import TERMINAL, Status


class ActionBody(BaseModel):
    reason: str | None = Field(None, max_length=500)
    note: str | None = Field(None, max_length=500)
    result: str | None = Field(None, max_length=2000)
    category_code: str | None = None
    priority: str | None = Field(None, pattern="^(urgent|normal|low)$")
    main_department_id: Id | None = None
    assist_department_ids: list[Id] | None = None
    task_id: Id | None = None
    days: Count | None = None
    approve: bool | None = None
    passed: bool | None = None
    rating: str | None = None
    comment: str | None = Field(None, max_length=500)
    into_id: Id | None = None


def _routing(stored: str | None) -> dict:
    """The stored routing decision, its reason in the reader's language."""
    d = json.loads(stored or "{}")
    if "why_msg" in d:
        d["why"] = render(from_json(d.pop("why_msg")))
    return d


class TaskRead(BaseModel):
    id: int
    incident_id: int
    department_id: int
    department_name: str | None = None
    role: str
    status: str
    result: str | None
    created_at: datetime
    accepted_at: datetime | None
    done_at: datetime | None

    @classmethod
    def of(cls, t: Task, names: Names | None = None, *, masked: bool = True) -> TaskRead:
        """The task; its result text masked (mask_text) unless ``masked`` is False."""
        return cls(id=t.id, incident_id=t.incident_id, department_id=t.department_id,
                   department_name=(names or Names()).departments.get(t.department_id), role=t.role, status=t.status,
                   result=mask_text(t.result) if masked else t.result, created_at=_t(t.created_at),
                   accepted_at=_t(t.accepted_at), done_at=_t(t.done_at))


class TimelineRead(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: Status | None
    to_status: Status
    reason: str | None
    data: dict

    @classmethod
    def of(cls, e: TimelineEntry, *, masked: bool = True) -> TimelineRead:
        """The step; its reason and the texts in its data masked (mask_text) unless ``masked`` is False."""
        data = {k: render(from_json(v)) if isinstance(v, dict) and "msg" in v else v  # a stored message
                for k, v in json.loads(e.data or "{}").items()}
        if masked:
            data = {k: mask_text(v) if isinstance(v, str) else v for k, v in data.items()}
        return cls(at=_t(e.at), actor=e.actor, action=e.action, from_status=e.from_status, to_status=e.to_status,
                   reason=mask_text(e.reason) if masked else e.reason, data=data)


@dataclass
class Names:
    """Names to show beside ids: areas by id and department names by id."""

    areas: dict[int, Any] = field(default_factory=dict)
    departments: dict[int | None, str] = field(default_factory=dict)


class IncidentRead(BaseModel):
    id: int
    code: str
    channel: str
    status: Status
    light: str
    suspended: bool
    category_code: str
    category_confirmed: bool
    suggested_code: str | None
    suggested_confidence: float | None
    priority: str
    description: str
    address_text: str | None
    lon: float
    lat: float
    grid_id: int
    grid_code: str | None = None
    grid_name: str | None = None
    street_id: int
    street_code: str | None = None
    street_name: str | None = None
    main_department_id: int | None
    main_department_name: str | None = None
    routing: dict
    deadline_at: datetime | None
    warn_at: datetime | None
    extension_days: int | None
    extension_reason: str | None
    parent_id: int | None
    repeat_count: int
    return_count: int
    reopen_count: int
    satisfaction: str | None
    reporter_name: str | None
    reporter_phone: str | None
    media_url: str | None
    created_at: datetime
    registered_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, i: Incident, *, masked: bool = True, names: Names | None = None) -> IncidentRead:
        """The incident; when ``masked``, the reporter's contacts and every free text (description, address
        in words, extension reason) masked, so the personal data a reporter wrote or said stays hidden."""
        names = names or Names()
        text = mask_text if masked else (lambda v: v)
        grid, street = names.areas.get(i.grid_id), names.areas.get(i.street_id)
        return cls(
            grid_code=grid.code if grid else None, grid_name=grid.name if grid else None,
            street_code=street.code if street else None, street_name=street.name if street else None,
            main_department_name=names.departments.get(i.main_department_id),
            id=i.id, code=i.code, channel=i.channel, status=i.status,
            light=deadlines.light(utcnow(), warn_at=i.warn_at, deadline_at=i.deadline_at,
                                  closed=i.status in TERMINAL, suspended_at=i.suspended_at),
            suspended=i.suspended_at is not None, category_code=i.category_code,
            category_confirmed=i.category_confirmed, suggested_code=i.suggested_code,
            suggested_confidence=i.suggested_confidence, priority=i.priority, description=text(i.description),
            address_text=text(i.address_text), lon=i.lon, lat=i.lat, grid_id=i.grid_id, street_id=i.street_id,
            main_department_id=i.main_department_id, routing=_routing(i.routing),
            deadline_at=_t(i.deadline_at), warn_at=_t(i.warn_at), extension_days=i.extension_days,
            extension_reason=text(i.extension_reason), parent_id=i.parent_id, repeat_count=i.repeat_count,
            return_count=i.return_count, reopen_count=i.reopen_count, satisfaction=i.satisfaction,
            reporter_name=mask_name(i.reporter_name) if masked else i.reporter_name,
            reporter_phone=mask_phone(i.reporter_phone) if masked else i.reporter_phone, media_url=i.media_url,
            created_at=_t(i.created_at), registered_at=_t(i.registered_at), closed_at=_t(i.closed_at))


class IncidentDetail(IncidentRead):
    tasks: list[TaskRead]
    timeline: list[TimelineRead]
    reporters: list[ReporterRead]
    possible_duplicates: list[dict] = []


class TaskWithIncident(TaskRead):
    incident: IncidentRead
