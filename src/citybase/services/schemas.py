"""API shapes of 一网通办. Personal fields of an application's form are shown to its applicant, the clerks of
its departments and the window clerks; the lists carry none."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from citybase.core.i18n import from_json, render
from citybase.core.schemas import Id
from citybase.services.models import (
    Application,
    Bundle,
    BundleVersion,
    Item,
    ItemVersion,
    MaterialFile,
    Part,
    Rating,
    Rectification,
    TimelineEntry,
)
from citybase.services.states import PartStatus

Kind = Literal["licensing", "confirmation", "payment", "award", "other_power", "public_service"]
OnlineLevel = Literal["full", "partial", "offline"]
ApplicantKind = Literal["person", "entity"]


class MaterialSource(BaseModel):
    kind: Literal["applicant", "licence", "registry", "item"]
    type: str | None = Field(None, max_length=40, description="licence type code (kind licence)")
    field: str | None = Field(None, max_length=40, description="registry field, e.g. person.household_no")
    item: str | None = Field(None, max_length=32, description="the item whose result this is (kind item)")


class Material(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)
    required: bool = True
    condition: str | None = Field(None, max_length=200, description="when a conditional material is needed")
    source: MaterialSource


class ItemWrite(BaseModel):
    """A catalogue item as an admin writes it (each write of an existing code is its next version)."""

    code: str = Field(..., pattern=r"^[A-Z0-9-]{3,32}$")
    name: str = Field(..., min_length=2, max_length=100)
    department: str = Field(..., max_length=18, description="the department's GB 32100 code")
    kind: Kind
    legal_basis: str = Field("", max_length=2000)
    conditions: str = Field("", max_length=2000)
    applicant_kinds: list[ApplicantKind] = Field(..., min_length=1, max_length=2)
    form: dict[str, Any] = Field(..., description="JSON Schema object; each property has a Chinese title")
    materials: list[Material] = Field(default_factory=list, max_length=50)
    fee: float = Field(0, ge=0, le=1_000_000)
    statutory_days: int = Field(..., ge=0, le=365)
    committed_days: int = Field(..., ge=0, le=365)
    instant: bool = False
    max_visits: int = Field(0, ge=0, le=10)
    online_level: OnlineLevel
    steps: list[str] = Field(default_factory=lambda: ["受理", "审查", "决定", "办结"], max_length=20)
    result_licence_type: str | None = Field(None, max_length=40)

    def spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


class ItemRead(BaseModel):
    code: str
    version: int
    current_version: int
    name: str
    department_id: int
    kind: str
    legal_basis: str
    conditions: str
    applicant_kinds: list[str]
    form: dict[str, Any]
    materials: list[dict[str, Any]]
    fee: float
    statutory_days: int
    committed_days: int
    instant: bool
    max_visits: int
    online_level: str
    steps: list[str]
    result_licence_type: str | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, item: Item, v: ItemVersion) -> ItemRead:
        return cls(code=item.code, version=v.version, current_version=item.current_version, name=v.name,
                   department_id=v.department_id, kind=v.kind, legal_basis=v.legal_basis, conditions=v.conditions,
                   applicant_kinds=v.applicant_kinds.split(","), form=json.loads(v.form_schema),
                   materials=json.loads(v.materials), fee=v.fee, statutory_days=v.statutory_days,
                   committed_days=v.committed_days, instant=v.instant, max_visits=v.max_visits,
                   online_level=v.online_level, steps=json.loads(v.steps), result_licence_type=v.result_licence_type,
                   created_at=v.created_at, created_by=v.created_by)


class ItemSummary(BaseModel):
    code: str
    version: int
    name: str
    department_id: int
    department: str | None = None
    kind: str
    statutory_days: int
    committed_days: int
    instant: bool
    max_visits: int
    online_level: str

    @classmethod
    def of(cls, item: Item, v: ItemVersion, names: dict[int, str] | None = None) -> ItemSummary:
        return cls(code=item.code, version=v.version, name=v.name, department_id=v.department_id,
                   department=(names or {}).get(v.department_id), kind=v.kind,
                   statutory_days=v.statutory_days, committed_days=v.committed_days, instant=v.instant,
                   max_visits=v.max_visits, online_level=v.online_level)


class BundleMember(BaseModel):
    item: str
    name: str
    department_id: int
    department: str | None = None
    committed_days: int
    after: list[str]


class BundleMemberWrite(BaseModel):
    item: str = Field(..., min_length=1, max_length=32, description="the catalogue item's code")
    after: list[str] = Field(default_factory=list, max_length=20,
                             description="codes of the members this one waits for (each in the bundle)")


class BundleWrite(BaseModel):
    """A 一件事 bundle as an admin writes it: each write of an existing code is its next version."""

    code: str | None = Field(None, pattern=r"^[a-z0-9-]{2,32}$", description="new bundles only (PUT: the path's)")
    name: str = Field(..., min_length=2, max_length=100)
    description: str = Field("", max_length=2000)
    applicant_kind: Literal["person", "entity", "any"]
    members: list[BundleMemberWrite] = Field(..., min_length=1, max_length=30)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "applicant_kind": self.applicant_kind,
                "members": [m.model_dump() for m in self.members]}


class BundleRead(BaseModel):
    code: str
    version: int
    current_version: int
    name: str
    description: str
    applicant_kind: str
    members: list[BundleMember]
    groups: list[list[str]] = Field(..., description="stages: the items of one stage run in parallel")
    promised_days: int = Field(..., description="the critical path in working days")
    critical_path: list[str]
    form: dict[str, Any] | None = Field(None, description="the merged form (detail only)")
    materials: list[dict[str, Any]] | None = Field(None, description="deduplicated materials (detail only)")
    savings: dict[str, Any]
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, b: Bundle, v: BundleVersion, members: list[tuple[Any, ItemVersion]], plan: dict[str, Any], *,
           detail: bool, names: dict[int, str] | None = None) -> BundleRead:
        return cls(code=b.code, version=v.version, current_version=b.current_version, name=v.name,
                   description=v.description, applicant_kind=v.applicant_kind,
                   members=[BundleMember(item=m.code, name=m.name, department_id=m.department_id,
                                         department=(names or {}).get(m.department_id),
                                         committed_days=m.committed_days, after=list(m.after)) for m, _ in members],
                   groups=plan["groups"], promised_days=plan["promised_days"], critical_path=plan["critical_path"],
                   form=plan["form"] if detail else None, materials=plan["materials"] if detail else None,
                   savings=plan["savings"], created_at=v.created_at, created_by=v.created_by)


class ApplicationBundle(BaseModel):
    """The bundle an application was started on, at the version it keeps, and the plan of the item versions
    it keeps."""

    code: str | None
    version: int | None = Field(None, description="the bundle version the application was started on")
    current_version: int | None = Field(None, description="the bundle's version now")
    name: str | None
    promised_days: int
    critical_path: list[str]
    groups: list[list[str]]


class ApplicationStart(BaseModel):
    """Start a draft: a bundle or one item; a window clerk names the person or legal entity it is for."""

    bundle: str | None = Field(None, max_length=32)
    item: str | None = Field(None, max_length=32)
    applicant_kind: ApplicantKind | None = None
    person_id: Id | None = Field(None, description="window clerks only: the person at the counter")
    legal_entity_id: Id | None = Field(None, description="window clerks only: the firm at the counter")


class DraftWrite(BaseModel):
    form: dict[str, Any] | None = Field(None, description="answers by field key; null clears one")
    consent: list[str] | None = Field(None, max_length=50, description="licence types the applicant agrees to "
                                      "have fetched from the licence library")
    provided: list[str] | None = Field(None, max_length=50, description=(
        "window clerks only: keys of the materials whose paper original was checked at the counter (原件已核验); "
        "an applicant uploads files with POST …/applications/{id}/materials/{key}"))


class StepWrite(BaseModel):
    reason: str | None = Field(None, max_length=2000)
    form: dict[str, Any] | None = Field(None, description="correct: the corrected answers")
    provided: list[str] | None = Field(None, max_length=50, description=(
        "correct, window clerks only: materials whose paper original was checked now (原件已核验)"))


class MaterialFileRead(BaseModel):
    """A file uploaded for one material: what it is, who brought it when, where to download it."""

    id: int
    application_id: int
    material_key: str
    material_name: str | None = None
    name: str = Field(..., description="the file name as uploaded (UTF-8)")
    content_type: str = Field(..., description="what its content is (by its magic numbers)")
    size: int = Field(..., description="bytes")
    sha256: str
    stage: Literal["draft", "correction"]
    uploaded_by: str
    uploaded_at: datetime
    url: str = Field(..., description="GET it to download (audited)")

    @classmethod
    def of(cls, f: MaterialFile, material_name: str | None = None) -> MaterialFileRead:
        return cls(id=f.id, application_id=f.application_id, material_key=f.material_key,
                   material_name=material_name, name=f.name, content_type=f.content_type, size=f.size,
                   sha256=f.sha256, stage=f.stage, uploaded_by=f.uploaded_by, uploaded_at=f.uploaded_at,  # type: ignore[arg-type]
                   url=f"/api/v1/services/applications/{f.application_id}/files/{f.id}")


class PartRead(BaseModel):
    id: int
    application_id: int
    item_code: str
    item_name: str | None = None
    department_id: int
    department: str | None = Field(None, description="the department's short name")
    status: PartStatus
    after: list[str]
    committed_days: int
    accepted_at: datetime | None
    deadline_at: datetime | None
    light: str
    paused_at: datetime | None
    corrections: int
    decision: str | None
    reason: str | None
    done_at: datetime | None
    supervised_at: datetime | None

    @classmethod
    def of(cls, p: Part, light: str, names: dict[int, str] | None = None, item_name: str | None = None) -> PartRead:
        return cls(id=p.id, application_id=p.application_id, item_code=p.item_code, item_name=item_name,
                   department_id=p.department_id, department=(names or {}).get(p.department_id),
                   status=PartStatus(p.status), after=json.loads(p.after), committed_days=p.committed_days,
                   accepted_at=p.accepted_at, deadline_at=p.deadline_at, light=light, paused_at=p.paused_at,
                   corrections=p.corrections, decision=p.decision,
                   reason=render(from_json(json.loads(p.reason))) if p.reason else None, done_at=p.done_at,
                   supervised_at=p.supervised_at)


class TimelineRead(BaseModel):
    at: datetime
    actor: str
    action: str
    part_id: int | None
    from_status: str | None
    to_status: str | None
    note: str | None

    @classmethod
    def of(cls, e: TimelineEntry) -> TimelineRead:
        return cls(at=e.at, actor=e.actor, action=e.action, part_id=e.part_id, from_status=e.from_status,
                   to_status=e.to_status, note=render(from_json(json.loads(e.note))) if e.note else None)


class RectificationRead(BaseModel):
    id: int
    application_id: int
    department_id: int
    status: str
    deadline_at: datetime
    action_taken: str | None
    callback_at: datetime | None
    callback_note: str | None

    @classmethod
    def of(cls, r: Rectification) -> RectificationRead:
        return cls(id=r.id, application_id=r.application_id, department_id=r.department_id, status=r.status,
                   deadline_at=r.deadline_at, action_taken=r.action_taken, callback_at=r.callback_at,
                   callback_note=r.callback_note)


class RatingRead(BaseModel):
    grade: int
    label: str
    channel: str
    comment: str | None
    at: datetime
    rectification: RectificationRead | None

    @classmethod
    def of(cls, r: Rating, rect: Rectification | None, label: str) -> RatingRead:
        return cls(grade=r.grade, label=label, channel=r.channel, comment=r.comment, at=r.at,
                   rectification=RectificationRead.of(rect) if rect else None)


class RatingWrite(BaseModel):
    grade: int = Field(..., ge=1, le=5, description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意")
    channel: Literal["online", "window", "app", "sms"] = "online"
    comment: str | None = Field(None, max_length=2000)
    department_id: Id | None = Field(None, description="the department a bad rating is about (default: the "
                                     "one that refused, else the last to finish)")


class RectifyWrite(BaseModel):
    action_taken: str = Field(..., min_length=1, max_length=2000)
    callback_note: str = Field(..., min_length=1, max_length=2000, description="回访: what the applicant said")


class ApplicationSummary(BaseModel):
    id: int
    code: str
    status: str
    outcome: str | None
    bundle_id: int | None
    bundle_version_id: int | None = Field(None, description="the bundle version it was started on (kept)")
    applicant_kind: str
    channel: str
    promised_days: int
    created_at: datetime
    submitted_at: datetime | None
    done_at: datetime | None

    @classmethod
    def of(cls, a: Application) -> ApplicationSummary:
        return cls(id=a.id, code=a.code, status=a.status, outcome=a.outcome, bundle_id=a.bundle_id,
                   bundle_version_id=a.bundle_version_id,
                   applicant_kind=a.applicant_kind, channel=a.channel, promised_days=a.promised_days,
                   created_at=a.created_at, submitted_at=a.submitted_at, done_at=a.done_at)


class ApplicationRead(ApplicationSummary):
    person_id: int | None
    legal_entity_id: int | None
    filed_by: str
    bundle: ApplicationBundle | None = None
    members: list[dict[str, Any]]
    form_schema: dict[str, Any]
    form: dict[str, Any]
    prefilled: list[str]
    materials: list[dict[str, Any]]
    exemptions: list[dict[str, Any]]
    consent: list[str]
    parts: list[PartRead]
    timeline: list[TimelineRead]
    rating: RatingRead | None
