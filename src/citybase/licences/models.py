"""Tables of the electronic licences (电子证照): the type catalogue (GB/T 36902), the licences, every use of one,
and the public keys that verify their signatures (the private keys never enter the database)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

HOLDER_KINDS = ("person", "entity")
STORED_STATUSES = ("valid", "revoked")  # "expired" is read from expires_on, never stored


class LicenceType(Base):
    __tablename__ = "licence_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)  # stable name other domains use: "business_licence"
    code: Mapped[str] = mapped_column(String(21), unique=True)  # GB/T 36902 type code: dept GB 32100 + 3 digits
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(100))
    issuer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    holder_kind: Mapped[str] = mapped_column(String(8))
    fields: Mapped[str] = mapped_column(Text)  # JSON list of {key, label, label_en, pii}
    validity_years: Mapped[int | None] = mapped_column(Integer)  # None: long-term (长期有效)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Licence(Base):
    __tablename__ = "licences"
    __table_args__ = (Index("ix_licences_type_id_status", "type_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)  # GB/T 36904 证照标识
    type_id: Mapped[int] = mapped_column(ForeignKey("licence_types.id"))
    holder_kind: Mapped[str] = mapped_column(String(8))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    legal_entity_id: Mapped[int | None] = mapped_column(ForeignKey("legal_entities.id"), index=True)
    holder_name: Mapped[str] = mapped_column(String(100))
    holder_code: Mapped[str] = mapped_column(String(18))  # the holder's GB 11643 ID number or GB 32100 code
    fields: Mapped[str] = mapped_column(Text)  # JSON object, the type's declared fields
    issuer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    issued_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date, index=True)
    application_ref: Mapped[str | None] = mapped_column(String(64))  # the approval that issued it
    status: Mapped[str] = mapped_column(String(8))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(Text)  # the signed CBL1 token (content + Ed25519 signature)
    key_id: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LicenceUse(Base):
    __tablename__ = "licence_uses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    licence_id: Mapped[int] = mapped_column(ForeignKey("licences.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    purpose: Mapped[str] = mapped_column(String(200))
    application_ref: Mapped[str | None] = mapped_column(String(64))
    consent_ref: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(120))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LicenceKey(Base):
    """A public key that has signed licences (published so that old licences still verify after a rotation)."""

    __tablename__ = "licence_keys"

    kid: Mapped[str] = mapped_column(String(8), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(String(64))  # raw 32 bytes, base64url
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
