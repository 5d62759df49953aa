"""API shapes of the incident loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from citybase.core.masking import mask_name, mask_phone
from citybase.core.schemas import Count, Id, Int32
from citybase.core.timeutil import to_shanghai, utcnow
from citybase.ops import deadlines
from citybase.ops.models import Category, Incident, Reporter, RoutingRule, Task, TimelineEntry


def _t(v: datetime | None) -> datetime | None:
    return to_shanghai(v) if v else None


class CategoryRead(BaseModel):
    code: str
    name: str
    major: str
    major_name: str
    kind: str
    urgent_hours: int
    normal_days: int
    low_days: int
    needs_verification: bool
    dup_radius_m: int
    dup_window_h: int
    active: bool

    @classmethod
    def of(cls, c: Category) -> CategoryRead:
        return cls(**{k: getattr(c, k) for k in cls.model_fields})


class CategoryWrite(BaseModel):
    name: str | None = Field(None, max_length=64)
    kind: str | None = Field(None, pattern="^(component|event)$")
    urgent_hours: int | None = Field(None, ge=1, le=72)
    normal_days: int | None = Field(None, ge=1, le=60)
    low_days: int | None = Field(None, ge=1, le=60)
    needs_verification: bool | None = None
    dup_radius_m: int | None = Field(None, ge=0, le=5000)
    dup_window_h: int | None = Field(None, ge=1, le=720)
    active: bool | None = None


class RuleRead(BaseModel):
    id: int
    category_code: str | None
    area_id: int | None
    hour_from: int | None
    hour_to: int | None
    main_department_id: int
    assist_department_ids: list[int]
    precedence: int
    note: str
    created_at: datetime
    retired_at: datetime | None
    replaces_id: int | None

    @classmethod
    def of(cls, r: RoutingRule) -> RuleRead:
        return cls(id=r.id, category_code=r.category_code, area_id=r.area_id, hour_from=r.hour_from,
                   hour_to=r.hour_to, main_department_id=r.main_department_id,
                   assist_department_ids=json.loads(r.assist_department_ids), precedence=r.precedence, note=r.note,
                   created_at=_t(r.created_at), retired_at=_t(r.retired_at), replaces_id=r.replaces_id)


class RuleWrite(BaseModel):
    category_code: str | None = Field(None, description="5-digit category, 2-digit major, or empty for any")
    area_code: str | None = Field(None, description="street, community or grid code; empty for the whole district")
    hour_from: int | None = Field(None, ge=0, le=23)
    hour_to: int | None = Field(None, ge=0, le=24)
    main_department: str = Field(..., description="department code")
    assist_departments: list[str] = []
    precedence: Int32 = 100
    note: str = Field("", max_length=200)
    replaces_id: Id | None = Field(None, description="the rule this one supersedes (it is retired, not rewritten)")


class IncidentCreate(BaseModel):
    description: str = Field(..., min_length=1, max_length=2000)
    category_code: str | None = None
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    address: str | None = Field(None, max_length=200)
    building_id: Id | None = None
    priority: str | None = Field(None, pattern="^(urgent|normal|low)$")
    reporter_name: str | None = Field(None, max_length=32)
    reporter_phone: str | None = Field(None, max_length=20)


class HotlineCall(BaseModel):
    caller_phone: str = Field(..., max_length=20)
    caller_name: str | None = Field(None, max_length=32)
    text: str = Field(..., min_length=1, max_length=2000, description="what the caller said")
    address: str = Field(..., min_length=2, max_length=200, description="the address in words")
    priority: str | None = Field(None, pattern="^(urgent|normal|low)$")


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
    def of(cls, t: Task, names: Names | None = None) -> TaskRead:
        return cls(id=t.id, incident_id=t.incident_id, department_id=t.department_id,
                   department_name=(names or Names()).departments.get(t.department_id), role=t.role, status=t.status,
                   result=t.result, created_at=_t(t.created_at), accepted_at=_t(t.accepted_at), done_at=_t(t.done_at))


class TimelineRead(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    data: dict

    @classmethod
    def of(cls, e: TimelineEntry) -> TimelineRead:
        return cls(at=_t(e.at), actor=e.actor, action=e.action, from_status=e.from_status, to_status=e.to_status,
                   reason=e.reason, data=json.loads(e.data or "{}"))


class ReporterRead(BaseModel):
    channel: str
    name: str | None
    phone: str | None
    source_incident_id: int
    notified_at: datetime | None
    outcome: str | None

    @classmethod
    def of(cls, r: Reporter, *, masked: bool) -> ReporterRead:
        return cls(channel=r.channel, name=mask_name(r.name) if masked else r.name,
                   phone=mask_phone(r.phone) if masked else r.phone, source_incident_id=r.source_incident_id,
                   notified_at=_t(r.notified_at), outcome=r.outcome)


@dataclass
class Names:
    """Names to show beside ids: areas by id and department names by id."""

    areas: dict[int, Any] = field(default_factory=dict)
    departments: dict[int | None, str] = field(default_factory=dict)


class IncidentRead(BaseModel):
    id: int
    code: str
    channel: str
    status: str
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
        names = names or Names()
        grid, street = names.areas.get(i.grid_id), names.areas.get(i.street_id)
        return cls(
            grid_code=grid.code if grid else None, grid_name=grid.name if grid else None,
            street_code=street.code if street else None, street_name=street.name if street else None,
            main_department_name=names.departments.get(i.main_department_id),
            id=i.id, code=i.code, channel=i.channel, status=i.status,
            light=deadlines.light(utcnow(), warn_at=i.warn_at, deadline_at=i.deadline_at,
                                  closed=i.status in ("closed", "rejected", "merged"), suspended_at=i.suspended_at),
            suspended=i.suspended_at is not None, category_code=i.category_code,
            category_confirmed=i.category_confirmed, suggested_code=i.suggested_code,
            suggested_confidence=i.suggested_confidence, priority=i.priority, description=i.description,
            address_text=i.address_text, lon=i.lon, lat=i.lat, grid_id=i.grid_id, street_id=i.street_id,
            main_department_id=i.main_department_id, routing=json.loads(i.routing or "{}"),
            deadline_at=_t(i.deadline_at), warn_at=_t(i.warn_at), extension_days=i.extension_days,
            extension_reason=i.extension_reason, parent_id=i.parent_id, repeat_count=i.repeat_count,
            return_count=i.return_count, reopen_count=i.reopen_count, satisfaction=i.satisfaction,
            reporter_name=mask_name(i.reporter_name) if masked else i.reporter_name,
            reporter_phone=mask_phone(i.reporter_phone) if masked else i.reporter_phone, media_url=i.media_url,
            created_at=_t(i.created_at), registered_at=_t(i.registered_at), closed_at=_t(i.closed_at))


class IncidentDetail(IncidentRead):
    tasks: list[TaskRead]
    timeline: list[TimelineRead]
    reporters: list[ReporterRead]
    possible_duplicates: list[dict] = []


class IntakeRead(BaseModel):
    incident: IncidentRead
    merged_into: str | None = None
    possible_duplicates: list[dict] = []


class TaskWithIncident(TaskRead):
    incident: IncidentRead
