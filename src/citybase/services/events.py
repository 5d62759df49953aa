"""Events 一网通办 publishes, each with its typed schema: ``citybase.services.application.<step>`` for an
application (submitted, done), ``citybase.services.part.<action>`` for every step of a department's part
(the licences domain listens to ``part.complete`` with a ``result_licence_type`` to issue the licence),
``citybase.services.material.<uploaded|removed>`` for an applicant's file, and the 好差评 events. Events carry ids, never personal fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from citybase.services.states import TRANSITIONS, PartStatus

PREFIX = "citybase.services."
APPLICATION_SUBMITTED = PREFIX + "application.submitted"
APPLICATION_DONE = PREFIX + "application.done"
RATED = PREFIX + "rating.given"
RECTIFICATION_OPENED = PREFIX + "rectification.opened"
RECTIFICATION_DONE = PREFIX + "rectification.done"
MATERIAL_UPLOADED = PREFIX + "material.uploaded"
MATERIAL_REMOVED = PREFIX + "material.removed"


def part_subject(action: str) -> str:
    """The subject of a part's step (``accept`` → ``citybase.services.part.accept``)."""
    return f"{PREFIX}part.{action}"


class ApplicationEvent(BaseModel):
    """An application was submitted or is done."""

    application_id: int
    code: str
    bundle: str | None
    applicant_kind: str
    person_id: int | None
    legal_entity_id: int | None
    channel: str
    status: str
    outcome: str | None = None
    departments: list[int]


class PartStep(BaseModel):
    """One step of a department's part; ``result_licence_type`` says which licence an approval issues."""

    model_config = ConfigDict(extra="allow")

    application_id: int
    part_id: int
    code: str
    item_code: str
    department_id: int
    status: PartStatus
    decision: str | None = None
    result_licence_type: str | None = None
    licence_identifier: str | None = None  # the licence the completed approval issued (GB/T 36904)
    holder_kind: str
    person_id: int | None
    legal_entity_id: int | None
    actor: str
    deadline_at: str | None = None  # ISO 8601, UTC


class RatingGiven(BaseModel):
    """好差评: a grade for an application (5 非常满意 … 1 非常不满意)."""

    application_id: int
    code: str
    grade: int
    channel: str
    rectification_id: int | None


class RectificationStep(BaseModel):
    """整改 opened by a bad rating, or done with its call-back."""

    rectification_id: int
    application_id: int
    department_id: int
    status: str
    deadline_at: str


class MaterialFileEvent(BaseModel):
    """A file was uploaded for (or removed from) one material of an application; never its name or content."""

    application_id: int
    code: str
    file_id: int
    material_key: str
    content_type: str
    size: int
    sha256: str
    stage: str  # draft | correction
    departments: list[int]  # the departments whose parts may read it (none before submission)
    actor: str


EVENTS: dict[str, type[BaseModel]] = {
    APPLICATION_SUBMITTED: ApplicationEvent,
    APPLICATION_DONE: ApplicationEvent,
    **{part_subject(a): PartStep for a in TRANSITIONS},
    RATED: RatingGiven,
    RECTIFICATION_OPENED: RectificationStep,
    RECTIFICATION_DONE: RectificationStep,
    MATERIAL_UPLOADED: MaterialFileEvent,
    MATERIAL_REMOVED: MaterialFileEvent,
}
