"""Tables of notifications: the reporters told the outcome, and the webhooks of department systems
with their delivery log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)


class Reporter(Base):
    """Everyone who reported an incident (several after a merge); each is told the outcome."""

    __tablename__ = "ops_reporters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id"), index=True)
    source_incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id"))
    channel: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(TZ)
    notified_at: Mapped[datetime | None] = mapped_column(TZ)
    outcome: Mapped[str | None] = mapped_column(String(500))


class Webhook(Base):
    __tablename__ = "ops_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(64))
    events: Mapped[str] = mapped_column(String(200))  # subject pattern, e.g. citybase.ops.incident.>
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TZ)


class WebhookDelivery(Base):
    __tablename__ = "ops_webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("ops_webhooks.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # delivered | failed | gave_up
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(TZ)
