"""Tables of the IoT domain (城域物联网): devices, every datapoint (idempotent on device, attribute and time),
the readings kept aside with their reason, the state of each device's rules, the alarms, and the feeds that
route readings to departments (前端分流)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)
DEVICE_STATES = ("online", "offline", "decommissioned")
ALARM_STATES = ("active", "acknowledged", "cleared")


class Device(Base):
    """A device: its type (``iot.types``), owner, place and credentials (the secret's SHA-256 only)."""

    __tablename__ = "iot_devices"
    __table_args__ = (Index("ix_iot_devices_type_state", "type_code", "state"),
                      Index("ix_iot_devices_department_state", "department_id", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    type_code: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(32), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    last_seen_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ)
    decommissioned_at: Mapped[datetime | None] = mapped_column(TZ)


class Reading(Base):
    """One datapoint: a device's attribute at a time. The primary key makes a repeat (a redelivery, a device
    sending twice) a no-op. Numbers in ``value``, enumerated states in ``text``."""

    __tablename__ = "iot_readings"
    __table_args__ = (Index("ix_iot_readings_received_at", "received_at"),)

    device_pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    attr: Mapped[str] = mapped_column(String(32), primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(TZ)


class DeadLetter(Base):
    """A message or a reading refused, kept with its reason and the payload as received."""

    __tablename__ = "iot_dead_letters"
    __table_args__ = (Index("ix_iot_dead_letters_device", "device_id", "received_at"),
                      Index("ix_iot_dead_letters_reason", "reason_code", "received_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str | None] = mapped_column(String(64))  # the device the message claimed (as given)
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    via: Mapped[str] = mapped_column(String(8))  # mqtt | http
    received_at: Mapped[datetime] = mapped_column(TZ)


class RuleState(Base):
    """Where one rule of one device stands: ``ok``, ``pending`` (the condition holds since ``since``, not yet
    long enough) or ``alarm`` (``alarm_id`` raised); the last value seen, for rate rules."""

    __tablename__ = "iot_rule_states"

    device_pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(32), primary_key=True)
    phase: Mapped[str] = mapped_column(String(8))
    since: Mapped[datetime | None] = mapped_column(TZ)
    last_value: Mapped[float | None] = mapped_column(Float)
    last_at: Mapped[datetime | None] = mapped_column(TZ)
    alarm_id: Mapped[int | None] = mapped_column(Integer)


class Alarm(Base):
    """An alarm: raised by a rule, acknowledged by a person, cleared by the readings or a person."""

    __tablename__ = "iot_alarms"
    __table_args__ = (Index("ix_iot_alarms_state_raised", "state", "raised_at"),
                      Index("ix_iot_alarms_device", "device_pk", "raised_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("iot_devices.id"))
    rule: Mapped[str] = mapped_column(String(32))
    alarm_type: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(16))
    attribute: Mapped[str | None] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(String(32))
    readings: Mapped[list[Any]] = mapped_column(JSON)  # the readings that caused it: [[time, value], ...]
    raised_at: Mapped[datetime] = mapped_column(TZ)
    acknowledged_at: Mapped[datetime | None] = mapped_column(TZ)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    cleared_at: Mapped[datetime | None] = mapped_column(TZ)
    cleared_by: Mapped[str | None] = mapped_column(String(64))  # None: cleared by the readings
    clear_value: Mapped[float | None] = mapped_column(Float)


class Feed(Base):
    """前端分流: readings of a department's devices (of a type, in an area) sent to its own system, as a signed
    webhook or on a bus subject of its own."""

    __tablename__ = "iot_feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    type_code: Mapped[str | None] = mapped_column(String(16))
    area_code: Mapped[str | None] = mapped_column(String(32))  # the grid code or a prefix of it (an area)
    url: Mapped[str | None] = mapped_column(String(1024))  # a webhook; None: the bus subject citybase.iot.feed.<name>
    secret: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
