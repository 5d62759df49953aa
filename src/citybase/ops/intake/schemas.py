"""API shapes of intake: a report over the internal API, a hotline call, and what intake did with it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from citybase.core.schemas import Id
from citybase.ops.workflow.schemas import IncidentRead


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


class IntakeRead(BaseModel):
    incident: IncidentRead
    merged_into: str | None = None
    possible_duplicates: list[dict] = []
