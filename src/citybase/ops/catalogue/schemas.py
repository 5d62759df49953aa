"""API shapes of the catalogue: categories and responsibility rules."""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, Field

from citybase.core.schemas import Id, Int32
from citybase.core.timeutil import to_shanghai
from citybase.ops.catalogue.models import Category, RoutingRule


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
