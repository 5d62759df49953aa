"""Tables of NGSI-LD subscriptions: each subscription (its stored form, with names expanded) with the columns
matching and delivery read or write on their own (activity, expiry, throttling, the periodic schedule and the
delivery record), and one revision number per tenant that every change of its subscriptions bumps, so that a
process can tell in one lookup whether its in-memory index of that tenant is current."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)
DOC = JSON().with_variant(JSONB(), "postgresql")
BIGID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER


class DeliveryRecord:
    """The delivery record of a subscription (``notification.timesSent`` … ``status``), the same columns on
    the entity subscriptions and on the subscriptions to registrations (``twin.sources``): one attempt is
    counted by ``subscriptions.delivery.record``, whichever table it is."""

    times_sent: Mapped[int] = mapped_column(Integer, default=0)
    times_failed: Mapped[int] = mapped_column(Integer, default=0)
    last_notification: Mapped[datetime | None] = mapped_column(TZ)
    last_success: Mapped[datetime | None] = mapped_column(TZ)
    last_failure: Mapped[datetime | None] = mapped_column(TZ)
    last_status: Mapped[str | None] = mapped_column(String(8))  # ok | failed (notification.status)
    last_error: Mapped[str | None] = mapped_column(String(500))  # why the last failed attempt failed


class TwinSubscription(DeliveryRecord, Base):
    """A subscription of a tenant; ``spec`` is the stored form of ``subscriptions.payload``."""

    __tablename__ = "twin_subscriptions"
    __table_args__ = (
        UniqueConstraint("tenant", "sub_id", name="uq_twin_subscriptions_tenant_sub_id"),
        Index("ix_twin_subscriptions_next_at", "next_at"),
    )

    pk: Mapped[int] = mapped_column(BIGID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    sub_id: Mapped[str] = mapped_column(String(1024))
    spec: Mapped[dict[str, Any]] = mapped_column(DOC)
    context: Mapped[str] = mapped_column(String(2048))  # jsonldContext: the @context notifications use
    active: Mapped[bool] = mapped_column(Boolean)  # isActive
    expires_at: Mapped[datetime | None] = mapped_column(TZ)
    throttling: Mapped[float | None] = mapped_column(Float)  # seconds between two notifications at least
    time_interval: Mapped[float | None] = mapped_column(Float)  # periodic: seconds between notifications
    next_at: Mapped[datetime | None] = mapped_column(TZ)  # periodic: when the next one is due
    last_queued_at: Mapped[datetime | None] = mapped_column(TZ)  # throttling: when the last one was queued
    created_at: Mapped[datetime] = mapped_column(TZ)
    modified_at: Mapped[datetime] = mapped_column(TZ)


class TwinSubscriptionRevision(Base):
    """How often the subscriptions of a tenant have changed (created, updated, deleted)."""

    __tablename__ = "twin_subscription_revisions"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
