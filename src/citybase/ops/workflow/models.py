"""Tables of the workflow: incidents, their tasks, their append-only timeline and supervisions (督办)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)


class Incident(Base):
    __tablename__ = "ops_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    channel: Mapped[str] = mapped_column(String(16), index=True)  # api | hotline | inspector | open311 | iot
    status: Mapped[str] = mapped_column(String(16), index=True)
    category_code: Mapped[str] = mapped_column(String(5), index=True)
    category_confirmed: Mapped[bool] = mapped_column(Boolean)
    suggested_code: Mapped[str | None] = mapped_column(String(5))
    suggested_confidence: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text)
    address_text: Mapped[str | None] = mapped_column(String(200))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"))
    grid_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    street_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    reporter_name: Mapped[str | None] = mapped_column(String(32))
    reporter_phone: Mapped[str | None] = mapped_column(String(20), index=True)  # repeat calls
    reporter_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    media_url: Mapped[str | None] = mapped_column(String(500))
    main_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    routing: Mapped[str] = mapped_column(Text)  # JSON snapshot of the routing decision (rule id, why)
    deadline_mode: Mapped[str | None] = mapped_column(String(8))  # natural | working
    budget_seconds: Mapped[int | None] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None] = mapped_column(TZ, index=True)
    warn_at: Mapped[datetime | None] = mapped_column(TZ)
    suspended_at: Mapped[datetime | None] = mapped_column(TZ)
    extension_days: Mapped[int | None] = mapped_column(Integer)  # pending request
    extension_reason: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ops_incidents.id"), index=True)
    repeat_count: Mapped[int] = mapped_column(Integer, default=0)
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    supervised_at: Mapped[datetime | None] = mapped_column(TZ)
    satisfaction: Mapped[str | None] = mapped_column(String(16))
    open311_token: Mapped[str | None] = mapped_column(String(40), unique=True)
    # What outside the loop made the incident, when a channel names it: an IoT alarm's alarm_id. Unique, so
    # the same alarm delivered twice (a new event id each time) cannot open a second incident, even in a race.
    source_ref: Mapped[str | None] = mapped_column(String(128), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(TZ, index=True)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    registered_at: Mapped[datetime | None] = mapped_column(TZ)
    dispatched_at: Mapped[datetime | None] = mapped_column(TZ)
    first_contact_at: Mapped[datetime | None] = mapped_column(TZ)
    closed_at: Mapped[datetime | None] = mapped_column(TZ)
    # Optimistic versioning: every UPDATE says WHERE version = <the version read>, so of two conflicting
    # steps the second updates no row and fails (StaleDataError, answered 409) instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")

    __table_args__ = (Index("ix_ops_incidents_dup", "category_code", "status", "lat", "lon"),)
    __mapper_args__ = {"version_id_col": version}


class Task(Base):
    __tablename__ = "ops_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))  # main | assist
    status: Mapped[str] = mapped_column(String(12), index=True)  # pending | accepted | done | returned | cancelled
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ)
    accepted_at: Mapped[datetime | None] = mapped_column(TZ)
    done_at: Mapped[datetime | None] = mapped_column(TZ)


class TimelineEntry(Base):
    """Append-only (enforced by a trigger): who did what to an incident, when and why."""

    __tablename__ = "ops_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[str] = mapped_column(Text)  # JSON


class Supervision(Base):
    """督办 of an incident for one missed deadline: the unique key makes a second one for it unstorable."""

    __tablename__ = "ops_supervisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops_incidents.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    deadline_at: Mapped[datetime] = mapped_column(TZ)  # the deadline that was missed (the overdue period)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TZ)
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)


    __table_args__ = (UniqueConstraint("incident_id", "deadline_at", name="uq_ops_supervisions_overdue_period"),)
