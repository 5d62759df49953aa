"""Events the workflow publishes, each with its typed schema: one ``citybase.ops.incident.<step>`` per step
on the timeline, ``citybase.ops.incident.repeat`` when a report is merged into an incident, and
``citybase.ops.incident.supervised`` when 督办 is raised."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from citybase.ops.workflow.states import Status

PREFIX = "citybase.ops.incident."
# The timeline actions that are published as citybase.ops.incident.<action>.
STEPS = ("receive", "register", "reject", "dispatch", "merge", "accept", "return", "complete_task", "complete",
         "verify", "verify_failed", "close", "reopen", "rate", "suspend", "resume", "extension_requested",
         "extension_approved", "extension_refused", "first_contact", "alarm_cleared")


class IncidentStep(BaseModel):
    """One step of an incident's workflow; the step's own data (task_id, result, days, …) rides along."""

    model_config = ConfigDict(extra="allow")

    incident_id: int
    code: str
    status: Status  # the state after the step
    category_code: str
    main_department_id: int | None
    street_id: int
    grid_id: int
    actor: str
    reason: str | None


class IncidentRepeat(BaseModel):
    """Another report was merged into this incident."""

    incident_id: int
    code: str
    repeat_count: int
    merged_id: int


class IncidentSupervised(BaseModel):
    """督办 was raised for an overdue incident, addressed to its main department."""

    incident_id: int
    code: str
    department_id: int | None
    deadline_at: str  # ISO 8601, UTC


EVENTS: dict[str, type[BaseModel]] = {
    **{PREFIX + step: IncidentStep for step in STEPS},
    PREFIX + "repeat": IncidentRepeat,
    PREFIX + "supervised": IncidentSupervised,
}
