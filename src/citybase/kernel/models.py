"""Tables of the kernel: the transactional outbox and the record of events each consumer has handled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)


class OutboxEvent(Base):
    """An event written in the transaction of the change it describes; the relay publishes it after the commit."""

    __tablename__ = "kernel_outbox"
    __table_args__ = (Index("ix_kernel_outbox_published_at_seq", "published_at", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # publish order
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    data: Mapped[str] = mapped_column(Text)  # JSON object
    context: Mapped[str] = mapped_column(Text)  # JSON {"id", "user_id", "parent_id"}
    created_at: Mapped[datetime] = mapped_column(TZ)
    published_at: Mapped[datetime | None] = mapped_column(TZ)


class ProcessedEvent(Base):
    """One event handled by one durable consumer, written in the handler's transaction (idempotency)."""

    __tablename__ = "kernel_processed"
    __table_args__ = (UniqueConstraint("consumer", "event_id", name="uq_kernel_processed_consumer_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(TZ, index=True)
