"""Tables of the catalogue: the category tree (部件/事件) and the responsibility rules (权责清单)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)


class Category(Base):
    __tablename__ = "ops_categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(5), unique=True)  # 2-digit major + 3-digit minor
    name: Mapped[str] = mapped_column(String(64))
    major: Mapped[str] = mapped_column(String(2), index=True)
    major_name: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # component (部件) | event (事件)
    urgent_hours: Mapped[int] = mapped_column(Integer)  # natural hours
    normal_days: Mapped[int] = mapped_column(Integer)  # working days
    low_days: Mapped[int] = mapped_column(Integer)  # working days
    needs_verification: Mapped[bool] = mapped_column(Boolean)
    dup_radius_m: Mapped[int] = mapped_column(Integer)
    dup_window_h: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RoutingRule(Base):
    """权责清单 entry. Rules are never edited in place: a change retires the old version and adds a new one."""

    __tablename__ = "ops_routing_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str | None] = mapped_column(String(5), index=True)  # 5-digit, 2-digit major, or any
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))  # street, community or grid; None = all
    hour_from: Mapped[int | None] = mapped_column(Integer)  # local hour window [from, to); None = all day
    hour_to: Mapped[int | None] = mapped_column(Integer)
    main_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    assist_department_ids: Mapped[str] = mapped_column(String(200))  # JSON list
    precedence: Mapped[int] = mapped_column(Integer)  # lower wins among equally specific rules
    note: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TZ)
    retired_at: Mapped[datetime | None] = mapped_column(TZ)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("ops_routing_rules.id"))
