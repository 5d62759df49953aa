"""A context source registration: which entities and attributes another NGSI-LD broker answers for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base
from citybase.twin.models import DOC
from citybase.twin.subscriptions.models import DeliveryRecord

TZ = DateTime(timezone=True)


class TwinRegistration(Base):
    __tablename__ = "twin_registrations"
    __table_args__ = (UniqueConstraint("tenant", "registration_id", name="uq_twin_registrations_tenant_registration_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    registration_id: Mapped[str] = mapped_column(String(1024))
    endpoint: Mapped[str] = mapped_column(String(2048))
    mode: Mapped[str] = mapped_column(String(16))  # inclusive, exclusive, redirect, auxiliary
    body: Mapped[dict[str, Any]] = mapped_column(DOC)  # the registration, names expanded (information, …)
    context: Mapped[Any | None] = mapped_column(DOC)  # the @context it was registered with
    expires_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ)
    modified_at: Mapped[datetime] = mapped_column(TZ)


class TwinSourceSubscription(DeliveryRecord, Base):
    """A subscription to context source registrations (§5.11); ``spec`` in the stored form of
    ``twin.subscriptions.payload``, as an entity subscription's (plus ``csf`` and ``temporalQ``), with the same
    delivery record and periodic schedule."""

    __tablename__ = "twin_source_subscriptions"
    __table_args__ = (UniqueConstraint("tenant", "sub_id", name="uq_twin_source_subscriptions_tenant_sub_id"),
                      Index("ix_twin_source_subscriptions_next_at", "next_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    sub_id: Mapped[str] = mapped_column(String(1024))
    spec: Mapped[dict[str, Any]] = mapped_column(DOC)
    context: Mapped[str] = mapped_column(String(2048))  # jsonldContext: the @context notifications use
    active: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None] = mapped_column(TZ)
    time_interval: Mapped[float | None] = mapped_column(Float)  # periodic: seconds between notifications
    next_at: Mapped[datetime | None] = mapped_column(TZ)  # periodic: when the next one is due
    created_at: Mapped[datetime] = mapped_column(TZ)
    modified_at: Mapped[datetime] = mapped_column(TZ)
