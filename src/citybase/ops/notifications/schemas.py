"""API shapes of notifications: the reporters of an incident."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from citybase.core.masking import mask_name, mask_phone, mask_text
from citybase.core.timeutil import to_shanghai
from citybase.ops.notifications.models import Reporter


def _t(v: datetime | None) -> datetime | None:
    return to_shanghai(v) if v else None


class ReporterRead(BaseModel):
    channel: str
    name: str | None
    phone: str | None
    source_incident_id: int
    notified_at: datetime | None
    outcome: str | None

    @classmethod
    def of(cls, r: Reporter, *, masked: bool) -> ReporterRead:
        """The reporter; name, phone and the outcome text told to them masked when ``masked``."""
        return cls(channel=r.channel, name=mask_name(r.name) if masked else r.name,
                   phone=mask_phone(r.phone) if masked else r.phone, source_incident_id=r.source_incident_id,
                   notified_at=_t(r.notified_at), outcome=mask_text(r.outcome) if masked else r.outcome)
