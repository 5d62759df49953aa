"""Events of registrations: one when a registration is created, changed or deleted, so other processes and
peers can follow which broker answers for what."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

REGISTRATION_CHANGED = "citybase.twin.registration_changed"


class RegistrationChanged(BaseModel):
    tenant: str
    id: str
    op: Literal["create", "update", "delete"]
    endpoint: str


EVENTS: dict[str, type[BaseModel]] = {REGISTRATION_CHANGED: RegistrationChanged}
