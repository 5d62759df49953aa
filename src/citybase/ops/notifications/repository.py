"""Every query of notifications: reporters, webhooks and their delivery log."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.ops.notifications.models import Reporter, Webhook, WebhookDelivery


class ReporterRepository:
    """The reporters of incidents, in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def of_incident(self, incident_id: int) -> list[Reporter]:
        """Everyone who reported an incident (several after a merge), first reporter first."""
        return list(self.session.scalars(select(Reporter).where(Reporter.incident_id == incident_id)
                                         .order_by(Reporter.id)))

    def unnotified(self, incident_id: int) -> list[Reporter]:
        """The reporters of an incident not yet told its outcome."""
        return list(self.session.scalars(select(Reporter).where(Reporter.incident_id == incident_id,
                                                                Reporter.notified_at.is_(None))))


class WebhookRepository:
    """Webhooks and their delivery log, in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def all(self) -> list[Webhook]:
        """Every webhook, oldest first."""
        return list(self.session.scalars(select(Webhook).order_by(Webhook.id)))

    def active(self) -> list[Webhook]:
        """The webhooks that receive events."""
        return list(self.session.scalars(select(Webhook).where(Webhook.active.is_(True))))

    def delivered(self, webhook_id: int, event_id: str) -> bool:
        """Whether an event already reached a webhook (a redelivered event is not sent twice)."""
        return self.session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == webhook_id,
                                                                    WebhookDelivery.event_id == event_id,
                                                                    WebhookDelivery.status == "delivered")) is not None

    def deliveries(self, webhook_id: int, *, limit: int) -> list[WebhookDelivery]:
        """The newest delivery attempts of a webhook."""
        q = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
             .order_by(WebhookDelivery.id.desc()).limit(limit))
        return list(self.session.scalars(q))
