"""Tables of the base registries."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

DEPARTMENT_KINDS = ("committee", "bureau", "office", "centre", "street_office")
ENTITY_TYPES = ("enterprise", "individual", "cooperative", "social_org", "institution")


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(18), unique=True)  # GB 32100 code of the organ
    name: Mapped[str] = mapped_column(String(64), unique=True)
    short_name: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    duties: Mapped[str] = mapped_column(Text)  # JSON list of duty strings
    phone: Mapped[str | None] = mapped_column(String(20))


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(32), index=True)
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(20))
    household_no: Mapped[str] = mapped_column(String(20), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), index=True)
    registered_address: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LegalEntity(Base):
    __tablename__ = "legal_entities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str] = mapped_column(String(16), index=True)
    industry_code: Mapped[str] = mapped_column(String(4), index=True)  # GB/T 4754 section letter
    industry: Mapped[str] = mapped_column(String(32))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), index=True)
    address: Mapped[str] = mapped_column(String(200))
    legal_rep_name: Mapped[str] = mapped_column(String(32))
    legal_rep_id_number: Mapped[str] = mapped_column(String(18))
    registered_capital: Mapped[float] = mapped_column(Float)  # 万元
    established_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
