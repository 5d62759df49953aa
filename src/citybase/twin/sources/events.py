"""Events of registrations: one when a registration is created, changed or deleted, so other processes and
peers can follow which broker answers for what, and the subscriptions to registrations can be matched against
the registration as it was before and after (``before``/``after``: ``snapshot`` of it, None when it did not or
no longer exists); and one per notification of a subscription to registrations, to deliver."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from citybase.twin.subscriptions.events import NotificationQueued

REGISTRATION_CHANGED = "citybase.twin.registration_changed"
CSOURCE_NOTIFICATION = "citybase.twin.csource_notification"


class RegistrationChanged(BaseModel):
    tenant: str
    id: str
    op: Literal["create", "update", "delete"]
    endpoint: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


EVENTS: dict[str, type[BaseModel]] = {REGISTRATION_CHANGED: RegistrationChanged,
                                      CSOURCE_NOTIFICATION: NotificationQueued}
