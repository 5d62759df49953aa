"""Events the subscriptions publish (through the outbox): one per notification to deliver, queued by the
matching consumer in the transaction that read the entity, and delivered by the notification consumer of
whichever process takes it. It carries the entities as shown (compacted in the subscription's @context), so
the delivery sends what matched, however the entity changed since."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

NOTIFICATION = "citybase.twin.notification"


class NotificationQueued(BaseModel):
    """A notification of a subscription, to be sent to its endpoint."""

    tenant: str  # "" for the default tenant
    subscription_id: str
    notification_id: str  # urn:ngsi-ld:Notification:…, the same on every attempt (receivers may deduplicate)
    trigger_reason: str | None  # the notificationTrigger that fired (None: periodic)
    context: str  # the URL of the @context the data is compacted with (jsonldContext)
    data: list[dict[str, Any]]  # the entities, as the notification carries them


EVENTS: dict[str, type[BaseModel]] = {NOTIFICATION: NotificationQueued}
