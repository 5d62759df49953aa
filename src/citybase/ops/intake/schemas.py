"""Shapes of intake: a report over the internal API, a hotline call, what intake did with it, and the one
intake command every channel maps its report to."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg
from citybase.core.phones import check_phone
from citybase.core.schemas import Id
from citybase.ops.catalogue.defaults import PRIORITIES
from citybase.ops.workflow.schemas import IncidentRead


class IncidentCreate(BaseModel):
    description: str = Field(..., min_length=1, max_length=2000)
    category_code: str | None = None
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    address: str | None = Field(None, max_length=200)
    building_id: Id | None = None
    priority: str | None = Field(None, pattern="^(urgent|normal|low)$")
    reporter_name: str | None = Field(None, max_length=32)
    reporter_phone: str | None = Field(None, max_length=20)


class HotlineCall(BaseModel):
    caller_phone: str = Field(..., max_length=20)
    caller_name: str | None = Field(None, max_length=32)
    text: str = Field(..., min_length=1, max_length=2000, description="what the caller said")
    address: str = Field(..., min_length=2, max_length=200, description="the address in words")
    priority: str | None = Field(None, pattern="^(urgent|normal|low)$")


class IntakeRead(BaseModel):
    incident: IncidentRead
    merged_into: str | None = None
    possible_duplicates: list[dict] = []


CHANNELS = ("api", "hotline", "inspector", "open311", "iot")
MAX_DESCRIPTION = 4000  # the longest report of any channel (GeoReport v2's limit); each channel may take less
MAX_SOURCE_REF = 128  # ops_incidents.source_ref


@dataclass(frozen=True)
class IntakeCommand:
    """One report from any channel, checked once when it is made: the channel is known, the description is
    1–4,000 characters (stripped), the priority one of the catalogue's, the phone a mainland number (kept
    without spaces). Where it is (a building, an address in words or a point) is resolved by
    ``service.locate_report``, once. An error is ``InvalidInput`` whose ``field`` names the field, so a
    channel can say it in its own terms (Open311's error list)."""

    channel: str
    description: str
    category_code: str | None = None
    lon: float | None = None
    lat: float | None = None
    address: str | None = None  # an address in words, matched to a building when there is no point
    building_id: Id | None = None
    address_text: str | None = None  # the address the incident keeps (default: ``address``, or the building's)
    priority: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_user_id: int | None = None
    media_url: str | None = None
    source_ref: str | None = None  # what outside the loop made the report (an IoT alarm's alarm_id); unique

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise InvalidInput(Msg('unknown channel {channel!r}', channel=self.channel),
                               fix=Msg('Use one of {items}.', items=', '.join(CHANNELS)), field="channel")
        description = (self.description or "").strip()
        if not description:
            raise InvalidInput(Msg('the description is empty'), fix=Msg('Say what the problem is, in a sentence.'),
                               field="description")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidInput(Msg('the description is longer than {MAX_DESCRIPTION:,} characters',
                                   MAX_DESCRIPTION=MAX_DESCRIPTION), fix=Msg('Shorten it.'), field="description")
        if self.priority is not None and self.priority not in PRIORITIES:
            raise InvalidInput(Msg('unknown priority {priority!r}', priority=self.priority),
                               fix=Msg('Use one of {items}.', items=', '.join(PRIORITIES)), field="priority")
        if self.source_ref is not None and not 1 <= len(self.source_ref) <= MAX_SOURCE_REF:
            raise InvalidInput(Msg('the source reference is empty or longer than {MAX_SOURCE_REF} characters',
                                   MAX_SOURCE_REF=MAX_SOURCE_REF),
                               fix=Msg('Name the alarm (or other source) by an id of at most that length.'),
                               field="source_ref")
        try:
            phone = check_phone(self.reporter_phone)
        except InvalidInput as exc:
            exc.extra["field"] = "reporter_phone"
            raise
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "reporter_phone", phone)
