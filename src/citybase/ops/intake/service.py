"""Intake from every channel (internal API, 12345 hotline, grid inspectors, Open311, IoT alarms): each maps its
report to one ``IntakeCommand`` (checked once when made); ``submit`` locates it once, classifies it only when
the channel gave no category, finds duplicates (merge or suggest), routes it, and stores it; a certain report
is registered and dispatched at once.

The incident's final state (received; registered and dispatched; or merged) is worked out in memory first,
then each row is written once: the incident (its code in the same INSERT), its reporter, its timeline entries
and its tasks one INSERT per table (``IntakeWriter``), its events in the outbox. Everything that only reads
comes first: on SQLite the write lock is held for the inserts alone.

Functions take ``session`` keyword-only and never commit."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy.orm import Session, make_transient_to_detached

from citybase.core.errors import Conflict, InvalidInput, NotFound
from citybase.core.i18n import Msg, to_json
from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.geo import service as geo
from citybase.kernel import outbox
from citybase.ops.catalogue.models import Category
from citybase.ops.catalogue.service import get_category, route
from citybase.ops.classification.service import Suggester, suggest
from citybase.ops.intake.repository import IntakeRepository, IntakeWriter
from citybase.ops.intake.schemas import CHANNELS, MAX_DESCRIPTION, IntakeCommand
from citybase.ops.notifications.models import Reporter
from citybase.ops.notifications.service import _notify_reporters
from citybase.ops.settings import AUTO_DISPATCH_CONFIDENCE, ops_settings  # noqa: F401 - the name stays importable
from citybase.ops.workflow.models import Incident, Task, TimelineEntry
from citybase.ops.workflow.service import SYSTEM, Actor, _start_clock
from citybase.ops.workflow.states import Status as S
from citybase.registry import service as registry

__all__ = ["CHANNELS", "MAX_DESCRIPTION", "IntakeCommand", "IntakeResult", "Place", "find_duplicates",
           "incident_of_alarm", "incidents_of_alarms", "intake", "locate_report", "submit"]

MERGE_SIMILARITY = 70.0  # text similarity (0–100) above which a nearby report is merged automatically
SUGGEST_SIMILARITY = 35.0  # below merge, above this: offered to the dispatcher as a possible duplicate
MERGE_REASON = "同类问题在附近已有工单，自动合并"


@dataclass
class IntakeResult:
    """What intake did with a report: the incident, the one it was merged into, the possible duplicates."""

    incident: Incident
    merged_into: Incident | None = None
    possible_duplicates: list[tuple[int, float, float]] = field(default_factory=list)  # (id, similarity, metres)


@dataclass(frozen=True)
class Place:
    """Where a report is: its point, the building it names (if any) and the grid, community and street."""

    lon: float
    lat: float
    building: Any | None  # the geo Building, when the report names one
    location: geo.Location


def locate_report(*, session: Session, lon: float | None = None, lat: float | None = None,
                  address: str | None = None, building_id: int | None = None) -> Place:
    """Resolve a report's location once: a building (its point), an address in words (when no point is given:
    the best-matching building), or a point; then the grid it is in. NotFound for an unknown building or a
    point outside every grid, InvalidInput for an address that matches no building or no location at all."""
    building = None
    if building_id is not None:
        building = geo.get_building(session=session, building_id=building_id)
    elif address and (lon is None or lat is None):
        building = geo.building_at_address(session=session, text=address)
        if building is None:
            raise InvalidInput(Msg('the address {address!r} matches no building of the city', address=address),
                               fix=Msg('Give the road and number (e.g. 漕溪北路101弄3号), or a point (lon, lat).'))
    if building is not None:
        lon, lat = building.lon, building.lat
    if lon is None or lat is None:
        raise InvalidInput(Msg('the report has no location'), fix=Msg('Give lon and lat, a building_id, or an address.'))
    return Place(lon, lat, building, geo.locate(session=session, lon=lon, lat=lat))


def intake(*, session: Session, channel: str, description: str, actor: Actor = SYSTEM,
           category_code: str | None = None, lon: float | None = None, lat: float | None = None,
           address: str | None = None, building_id: int | None = None, priority: str | None = None,
           reporter_name: str | None = None, reporter_phone: str | None = None, reporter_user_id: int | None = None,
           media_url: str | None = None, classifier: Suggester | None = None,
           auto_dispatch: bool | None = None, now: datetime | None = None) -> IntakeResult:
    """Take one report given field by field: the ``IntakeCommand`` of these fields, ``submit``-ted."""
    command = IntakeCommand(channel=channel, description=description, category_code=category_code, lon=lon,
                            lat=lat, address=address, building_id=building_id, priority=priority,
                            reporter_name=reporter_name, reporter_phone=reporter_phone,
                            reporter_user_id=reporter_user_id, media_url=media_url)
    return submit(session=session, command=command, actor=actor, classifier=classifier,
                  auto_dispatch=auto_dispatch, now=now)


@dataclass
class _Step:
    actor: Actor
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    data: dict[str, Any]
    main_department_id: int | None


def submit(*, session: Session, command: IntakeCommand, actor: Actor = SYSTEM, place: Place | None = None,
           classifier: Suggester | None = None, auto_dispatch: bool | None = None,
           now: datetime | None = None) -> IntakeResult:
    """Take one report: locate it (unless the channel already did: ``place``), take the channel's category or
    suggest one, find duplicates (merge or suggest), route it, and store it with its timeline and events.

    A report whose category is certain (given by the channel, or suggested with high confidence) is
    registered and dispatched at once by the system; a near repeat of an open one is merged into it; others
    wait for a dispatcher."""
    now = now or utcnow()
    c = command
    if place is None:
        place = locate_report(session=session, lon=c.lon, lat=c.lat, address=c.address, building_id=c.building_id)
    loc, building = place.location, place.building

    # What: the channel's category, or a suggestion (the classifier runs only when the category is unknown).
    suggested = confidence = None
    if c.category_code:
        cat, confirmed = get_category(session=session, code=c.category_code), True
    else:
        suggestions = suggest(c.description, classifier)
        suggested, confidence = suggestions[0] if suggestions else (None, None)
        # no suggestion: 政策咨询, a person decides what it really is
        cat, confirmed = get_category(session=session, code=suggested or "09009"), False
    prio = c.priority or ("urgent" if cat.major == "05" else "normal")  # 突发事件 are urgent unless said otherwise

    decision = route(session=session, category_code=cat.code, grid_id=loc.grid.id, community_id=loc.community.id,
                     street_id=loc.street.id, at=now)
    address_text = c.address_text or c.address or (building.address if building else None)
    inc = Incident(channel=c.channel, status=S.RECEIVED, category_code=cat.code, category_confirmed=confirmed,
                   suggested_code=suggested, suggested_confidence=confidence, priority=prio,
                   description=c.description, address_text=address_text, lon=place.lon, lat=place.lat,
                   building_id=building.id if building else None, grid_id=loc.grid.id,
                   community_id=loc.community.id, street_id=loc.street.id, reporter_name=c.reporter_name,
                   reporter_phone=c.reporter_phone, reporter_user_id=c.reporter_user_id, media_url=c.media_url,
                   main_department_id=decision.main_department_id, routing=decision.as_json(),
                   deadline_mode=None, budget_seconds=None, deadline_at=None, warn_at=None, suspended_at=None,
                   extension_days=None, extension_reason=None, parent_id=None, repeat_count=0, return_count=0,
                   reopen_count=0, supervised_at=None, satisfaction=None, open311_token=None,
                   source_ref=c.source_ref, created_at=now, updated_at=now, registered_at=None, dispatched_at=None, first_contact_at=None, closed_at=None)
    dup, candidates = find_duplicates(session=session, incident=inc, category=cat)

    # The final state, in memory: received; or merged into the duplicate; or registered and dispatched.
    stamp = utcnow()
    steps = [_Step(actor, "receive", None, S.RECEIVED, None,
                   {"channel": c.channel, "category_code": cat.code, "suggested_code": suggested,
                    "confidence": confidence, "routed_by": to_json(decision.why)}, inc.main_department_id)]
    tasks: list[dict[str, Any]] = []
    if dup is not None:
        if dup.status in (S.REJECTED, S.MERGED):
            raise Conflict(Msg('incident {code} is {status}; merge into an open or closed one', code=dup.code,
                               status=dup.status), fix=Msg('Choose the incident that is being handled.'))
        inc.parent_id = dup.id
        steps.append(_Step(SYSTEM, "merge", S.RECEIVED, S.MERGED, MERGE_REASON, {"into": dup.code},
                           inc.main_department_id))
    elif decision.main_department_id is not None and (auto_dispatch if auto_dispatch is not None else (
            confirmed or (confidence is not None and confidence >= ops_settings().auto_dispatch_confidence))):
        inc.category_confirmed = True  # 立案 by the system: the clock starts
        _start_clock(inc, cat, now)
        inc.registered_at = now
        steps.append(_Step(SYSTEM, "register", S.RECEIVED, S.REGISTERED, None,
                           {"category_code": cat.code, "priority": prio, "deadline_at": inc.deadline_at.isoformat()},
                           inc.main_department_id))
        main = decision.main_department_id  # 派遣 to the routing's departments
        assists = list(decision.assist_department_ids or [])
        tasks = [{"department_id": d, "role": role, "status": "pending", "created_at": stamp, "accepted_at": None,
                  "done_at": None, "result": None}
                 for d, role in [(main, "main"), *((a, "assist") for a in assists if a != main)]]
        inc.main_department_id, inc.dispatched_at = main, stamp
        steps.append(_Step(SYSTEM, "dispatch", S.REGISTERED, S.DISPATCHED, None,
                           {"main_department_id": main, "assist_department_ids": json.dumps(assists)}, main))
    inc.status, inc.updated_at = steps[-1].to_status, stamp

    # Each row once.
    writer = IntakeWriter.of(session)
    columns = {col.key: getattr(inc, col.key) for col in Incident.__mapper__.column_attrs if col.key != "id"}
    inc.id, inc.code = writer.insert_incident(columns, f"{as_utc(now).astimezone(SHANGHAI):%Y%m%d}")
    if "version" in Incident.__table__.c and getattr(inc, "version", None) is None:
        inc.version = 1  # as written by the writer
    make_transient_to_detached(inc)
    session.add(inc)  # persistent as written: no UPDATE follows
    writer.insert_rows(Reporter, [{"incident_id": dup.id if dup is not None else inc.id, "source_incident_id": inc.id,
                                   "channel": c.channel, "name": c.reporter_name, "phone": c.reporter_phone,
                                   "user_id": c.reporter_user_id, "created_at": now, "notified_at": None,
                                   "outcome": None}])
    entries = [{"incident_id": inc.id, "at": stamp, "actor": s.actor.name, "action": s.action,
                "from_status": s.from_status, "to_status": s.to_status, "reason": s.reason,
                "data": json.dumps(s.data, ensure_ascii=False, default=str)} for s in steps]
    if dup is not None:
        entries.append({"incident_id": dup.id, "at": stamp, "actor": SYSTEM.name, "action": "absorb",
                        "from_status": dup.status, "to_status": dup.status, "reason": MERGE_REASON,
                        "data": json.dumps({"merged": inc.code}, ensure_ascii=False)})
    writer.insert_rows(TimelineEntry, entries)
    writer.insert_rows(Task, [{"incident_id": inc.id, **t} for t in tasks])
    for s in steps:
        outbox.queue(session, f"citybase.ops.incident.{s.action}", {
            "incident_id": inc.id, "code": inc.code, "status": s.to_status, "category_code": inc.category_code,
            "main_department_id": s.main_department_id, "street_id": inc.street_id, "grid_id": inc.grid_id,
            "actor": s.actor.name, "reason": s.reason,
            **{k: v for k, v in s.data.items() if isinstance(v, str | int | float)}})
    result = IntakeResult(inc, possible_duplicates=candidates)
    if dup is not None:
        dup.repeat_count = (dup.repeat_count or 0) + 1
        outbox.queue(session, "citybase.ops.incident.repeat", {"incident_id": dup.id, "code": dup.code,
                                                               "repeat_count": dup.repeat_count,
                                                               "merged_id": inc.id})
        if dup.status == S.CLOSED:
            _notify_reporters(session, dup)  # the new reporter is told the outcome at once
        result.merged_into = dup
    return result


def find_duplicates(*, session: Session, incident: Incident, category: Category,
                    ) -> tuple[Incident | None, list[tuple[int, float, float]]]:
    """Open incidents of the same category within the category's radius and window, scored by text
    similarity; the same caller reporting the same category again is always a repeat.
    Returns the one to merge into (or None) and every candidate as (id, similarity, metres)."""
    since = as_utc(incident.created_at) - timedelta(hours=category.dup_window_h)
    repo = IntakeRepository.of(session)
    radius = category.dup_radius_m
    found: dict[int, tuple[float, float]] = {}
    if radius > 0:
        dlat = radius / 111_000
        dlon = radius / (111_000 * math.cos(math.radians(incident.lat)))
        near = repo.open_nearby(category.code, since, exclude_id=incident.id,
                                lat=(incident.lat - dlat, incident.lat + dlat), lon=(incident.lon - dlon, incident.lon + dlon))
        for oid, lat, lon, text in near:
            dist = _metres(incident.lat, incident.lon, lat, lon)
            if dist <= radius:
                sim = max(fuzz.ratio(incident.description, text),
                          fuzz.partial_ratio(incident.description, text) * 0.9)
                found[oid] = (sim, dist)
    if incident.reporter_phone:
        for oid, lat, lon, _ in repo.open_same_caller(category.code, since, exclude_id=incident.id,
                                                      phone=incident.reporter_phone):
            found[oid] = (100.0, _metres(incident.lat, incident.lon, lat, lon))  # the same caller again
    ranked = sorted(found.items(), key=lambda t: (-t[1][0], t[1][1]))
    candidates = [(oid, round(sim, 1), round(d, 1)) for oid, (sim, d) in ranked if sim >= SUGGEST_SIMILARITY]
    target = repo.incident(ranked[0][0]) if ranked and ranked[0][1][0] >= MERGE_SIMILARITY else None
    while target is not None and target.parent_id is not None:
        target = repo.incident(target.parent_id)
    return target, candidates


def incident_of_alarm(*, session: Session, alarm_id: str) -> dict[str, Any] | None:
    """What an IoT alarm became in the incident loop, for the IoT pages: the incident's id, code, status and
    main department's name, and ``merged_into`` (id and code) when it joined an earlier incident; None when
    the alarm opened no incident (``incident: false``, not yet handled, or raised before alarms were kept)."""
    return incidents_of_alarms(session=session, alarm_ids=[alarm_id]).get(alarm_id)


def incidents_of_alarms(*, session: Session, alarm_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``incident_of_alarm`` for a list of alarms in a few queries, by alarm_id (alarms without an incident
    are absent)."""
    refs = sorted({a for a in alarm_ids if a})
    if not refs:
        return {}
    repo = IntakeRepository.of(session)
    rows = repo.made_by_many(refs)
    parents = repo.codes({r.parent_id for r in rows if r.parent_id is not None})
    names: dict[int, str | None] = {}

    def department(department_id: int | None) -> str | None:
        if department_id is None:
            return None
        if department_id not in names:
            try:
                names[department_id] = registry.get_department_by_id(session=session, department_id=department_id).name
            except NotFound:
                names[department_id] = None
        return names[department_id]

    return {r.source_ref: {"id": r.id, "code": r.code, "status": r.status,
                           "department": department(r.main_department_id),
                           "merged_into": {"id": r.parent_id, "code": parents.get(r.parent_id)}
                           if r.parent_id is not None else None}
            for r in rows}


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_000
    dx = (lon2 - lon1) * 111_000 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)
