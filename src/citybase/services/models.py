"""Tables of 一网通办: catalogue items and their versions, bundles and theirs, applications with their departments'
parts, the append-only timeline, ratings (好差评) and rectifications (整改)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)


class Item(Base):
    """A service item (政务服务事项) by its code; what it says lives in its versions."""

    __tablename__ = "services_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    current_version: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TZ)


class ItemVersion(Base):
    """One version of an item, never changed once written: an edit adds the next version."""

    __tablename__ = "services_item_versions"
    __table_args__ = (UniqueConstraint("item_id", "version", name="uq_services_item_versions_item_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("services_items.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(Text)
    conditions: Mapped[str] = mapped_column(Text)
    applicant_kinds: Mapped[str] = mapped_column(String(32))  # comma-separated: person, entity
    form_schema: Mapped[str] = mapped_column(Text)  # JSON Schema (object) with Chinese titles
    materials: Mapped[str] = mapped_column(Text)  # JSON list of {name, required, condition?, source}
    fee: Mapped[float] = mapped_column(Float)  # 元
    statutory_days: Mapped[int] = mapped_column(Integer)  # 法定时限, working days
    committed_days: Mapped[int] = mapped_column(Integer)  # 承诺时限, working days
    instant: Mapped[bool] = mapped_column(Boolean)  # 即办件 (else 承诺件)
    max_visits: Mapped[int] = mapped_column(Integer)  # 0 = 零跑动, 1 = 最多跑一次
    online_level: Mapped[str] = mapped_column(String(16))  # full (全程网办) | partial | offline
    steps: Mapped[str] = mapped_column(Text)  # JSON list of the department's steps
    result_licence_type: Mapped[str | None] = mapped_column(String(40))  # the licence an approval issues
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(64))


class Bundle(Base):
    """一件事: several items applied for once, by its code; what it says lives in its versions."""

    __tablename__ = "services_bundles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TZ)


class BundleVersion(Base):
    """One version of a bundle, never changed once written: an edit (members, dependencies, name, description)
    adds the next version; members JSON [{item, after: [item codes]}]."""

    __tablename__ = "services_bundle_versions"
    __table_args__ = (UniqueConstraint("bundle_id", "version", name="uq_services_bundle_versions_bundle_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("services_bundles.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    applicant_kind: Mapped[str] = mapped_column(String(8))  # person | entity | any
    members: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(64))


class Application(Base):
    """An application (办件) for one item or one bundle, by a person or a legal entity."""

    __tablename__ = "services_applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # draft | processing | done | withdrawn
    outcome: Mapped[str | None] = mapped_column(String(16))  # approved | partly | refused (when done)
    bundle_id: Mapped[int | None] = mapped_column(ForeignKey("services_bundles.id"), index=True)
    bundle_version_id: Mapped[int | None] = mapped_column(  # the bundle version it was started on, kept
        ForeignKey("services_bundle_versions.id", name="fk_services_applications_bundle_version_id"))
    item_version_id: Mapped[int | None] = mapped_column(ForeignKey("services_item_versions.id"))  # single item
    applicant_kind: Mapped[str] = mapped_column(String(8))  # person | entity
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    legal_entity_id: Mapped[int | None] = mapped_column(ForeignKey("legal_entities.id"), index=True)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    filed_by: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8), index=True)  # online | window
    members: Mapped[str] = mapped_column(Text)  # JSON [{item, version_id, after}]: the versions it keeps
    form: Mapped[str] = mapped_column(Text)  # JSON: the merged form's answers
    prefilled: Mapped[str] = mapped_column(Text)  # JSON list of field keys taken from the registries
    exemptions: Mapped[str] = mapped_column(Text)  # JSON: materials not asked for, each with its source
    consent: Mapped[str] = mapped_column(Text)  # JSON: the licence types the applicant agreed to fetch
    provided: Mapped[str] = mapped_column(Text)  # JSON: keys of materials whose paper original a window clerk checked
    promised_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TZ, index=True)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    submitted_at: Mapped[datetime | None] = mapped_column(TZ, index=True)
    done_at: Mapped[datetime | None] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Part(Base):
    """One department's part of an application: one item version, worked through the state table."""

    __tablename__ = "services_parts"
    __table_args__ = (Index("ix_services_parts_department_status", "department_id", "status"),
                      Index("ix_services_parts_item_code", "item_code"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("services_applications.id"), index=True)
    item_version_id: Mapped[int] = mapped_column(ForeignKey("services_item_versions.id"), index=True)
    item_code: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    after: Mapped[str] = mapped_column(Text)  # JSON list of item codes of the same application it waits for
    committed_days: Mapped[int] = mapped_column(Integer)
    accepted_at: Mapped[datetime | None] = mapped_column(TZ)
    warn_at: Mapped[datetime | None] = mapped_column(TZ)
    deadline_at: Mapped[datetime | None] = mapped_column(TZ, index=True)
    paused_at: Mapped[datetime | None] = mapped_column(TZ)  # 补正: the clock stands still
    paused_from: Mapped[str | None] = mapped_column(String(16))  # the state a correction returns to
    corrections: Mapped[int] = mapped_column(Integer, default=0)
    decision: Mapped[str | None] = mapped_column(String(8))  # approve | refuse
    reason: Mapped[str | None] = mapped_column(Text)  # JSON (i18n) reason of a refusal or non-acceptance
    decided_at: Mapped[datetime | None] = mapped_column(TZ)
    done_at: Mapped[datetime | None] = mapped_column(TZ)
    supervised_at: Mapped[datetime | None] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class MaterialFile(Base):
    """A file uploaded for one material of an application; its bytes live in the file store under the data
    folder, named by ``sha256`` (``services.files.FileStore``), never in the database."""

    __tablename__ = "services_material_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("services_applications.id"), index=True)
    material_key: Mapped[str] = mapped_column(String(120))  # as the merged materials spell it (applicant:…)
    name: Mapped[str] = mapped_column(String(255))  # the uploader's file name, UTF-8
    content_type: Mapped[str] = mapped_column(String(40))  # what its bytes are (magic numbers), not what was declared
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    stage: Mapped[str] = mapped_column(String(12))  # draft | correction: when it came
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(TZ)


class TimelineEntry(Base):
    """Append-only (enforced by a trigger): every step of an application and of its parts."""

    __tablename__ = "services_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("services_applications.id"), index=True)
    part_id: Mapped[int | None] = mapped_column(ForeignKey("services_parts.id"))
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)  # JSON (i18n)


class Rating(Base):
    """好差评: one rating per application, with the channel it was given on."""

    __tablename__ = "services_ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("services_applications.id"), unique=True)
    grade: Mapped[int] = mapped_column(Integer)  # 5 非常满意 … 1 非常不满意
    channel: Mapped[str] = mapped_column(String(8))  # online | window | app | sms
    comment: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(TZ, index=True)


class Rectification(Base):
    """整改 opened by a bad rating: a department, a deadline, the fix and the call-back to the applicant."""

    __tablename__ = "services_rectifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("services_ratings.id"), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("services_applications.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    status: Mapped[str] = mapped_column(String(12))  # open | done
    deadline_at: Mapped[datetime] = mapped_column(TZ)
    action_taken: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[datetime | None] = mapped_column(TZ)
    callback_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ)
    done_at: Mapped[datetime | None] = mapped_column(TZ)
