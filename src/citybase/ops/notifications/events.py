"""Events notifications publish, each with its typed schema."""

from __future__ import annotations

from pydantic import BaseModel

REPORTER_NOTIFIED = "citybase.ops.reporter.notified"


class ReporterNotified(BaseModel):
    """A reporter was told the outcome of the incident (the channel's adapter delivers the message)."""

    incident_id: int
    code: str
    reporter_id: int
    channel: str
    source_incident_id: int  # the report they made (another incident when theirs was merged)


EVENTS: dict[str, type[BaseModel]] = {REPORTER_NOTIFIED: ReporterNotified}
