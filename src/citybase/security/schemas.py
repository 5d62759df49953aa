"""API shapes of identity and audit."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from citybase.core.schemas import Id


class UserRead(BaseModel):
    id: int
    username: str
    display_name: str
    department_id: int | None
    roles: list[str]
    active: bool


class UserCreate(BaseModel):
    username: str = Field(..., min_length=2, max_length=64, pattern=r"^[a-zA-Z0-9_.\-]+$")
    display_name: str = Field(..., min_length=1, max_length=64)
    roles: list[str] = Field(..., min_length=1)
    department_id: Id | None = None


class TokenCreate(BaseModel):
    name: str = Field("default", max_length=64)
    expires_at: datetime | None = None


class TokenRead(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenIssued(TokenRead):
    token: str = Field(..., description="the secret; shown once, store it now")


class AuditRead(BaseModel):
    seq: int
    at: datetime
    actor: str
    roles: str
    action: str
    subject_type: str
    subject_ids: str
    fields: str
    request_id: str
    hash: str


class AuditVerifyRead(BaseModel):
    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str | None
