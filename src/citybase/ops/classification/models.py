"""Tables of classification: the categories people chose against the suggestion (training feedback)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)


class ClassifierFeedback(Base):
    __tablename__ = "ops_classifier_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    suggested_code: Mapped[str | None] = mapped_column(String(5))
    chosen_code: Mapped[str] = mapped_column(String(5))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TZ)
