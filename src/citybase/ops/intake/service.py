"""Intake from every channel (internal API, 12345 hotline, grid inspectors, Open311, IoT alarms): locate the
report, suggest a category, find duplicates (merge or suggest), route it and store it with its first
timeline entry; a certain report is registered and dispatched at once.

Functions take ``session`` keyword-only and never commit."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg, to_json
from citybase.core.phones import check_phone
from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.geo import service as geo
from citybase.ops.catalogue.defaults import PRIORITIES
from citybase.ops.catalogue.models import Category
from citybase.ops.catalogue.service import get_category, route
from citybase.ops.classification.service import Suggester, suggest
from citybase.ops.intake.repository import IntakeRepository
from citybase.ops.notifications.models import Reporter
from citybase.ops.settings import AUTO_DISPATCH_CONFIDENCE, ops_settings  # noqa: F401 - the name stays importable
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.service import SYSTEM, Actor, _step, dispatch, merge, register
from citybase.ops.workflow.states import Status as S

CHANNELS = ("api", "hotline", "inspector", "open311", "iot")
MERGE_SIMILARITY = 70.0  # text similarity (0–100) above which a nearby report is merged automatically
SUGGEST_SIMILARITY = 35.0  # below merge, above this: offered to the dispatcher as a possible duplicate


@dataclass
class IntakeResult:
    """What intake did with a report: the incident, the one it was merged into, the possible duplicates."""

    incident: Incident
    merged_into: Incident | None = None
    possible_duplicates: list[tuple[int, float, float]] = field(default_factory=list)  # (id, similarity, metres)


MAX_DESCRIPTION = 4000  # the longest report of any channel (GeoReport v2's limit); each channel may take less


def intake(*, session: Session, channel: str, description: str, actor: Actor = SYSTEM,
           category_code: str | None = None, lon: float | None = None, lat: float | None = None,
           address: str | None = None, building_id: int | None = None, priority: str | None = None,
           reporter_name: str | None = None, reporter_phone: str | None = None, reporter_user_id: int | None = None,
           media_url: str | None = None, classifier: Suggester | None = None,
           auto_dispatch: bool | None = None, now: datetime | None = None) -> IntakeResult:
    """Take one report from any channel: locate it (point, building or address in words), suggest a
    category, find duplicates (merge or suggest), route it, and store it with its first timeline entry.

    A report whose category is certain (given by the channel, or suggested with high confidence) is
    registered and dispatched at once by the system; others, and reports no rule covers (never refused
    for want of a rule), wait for a dispatcher."""
    now = now or utcnow()
    if channel not in CHANNELS:
        raise InvalidInput(Msg('unknown channel {channel!r}', channel=channel), fix=Msg('Use one of {items}.', items=', '.join(CHANNELS)))
    description = (description or "").strip()
    if not description:
        raise InvalidInput(Msg('the description is empty'), fix=Msg('Say what the problem is, in a sentence.'))
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(Msg('the description is longer than {MAX_DESCRIPTION:,} characters', MAX_DESCRIPTION=MAX_DESCRIPTION), fix=Msg('Shorten it.'))
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput(Msg('unknown priority {priority!r}', priority=priority), fix=Msg('Use one of {items}.', items=', '.join(PRIORITIES)))
    phone = check_phone(reporter_phone)

    # Where: a building, an address in words, or a point.
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
    loc = geo.locate(session=session, lon=lon, lat=lat)

    # What: the channel's category, or a suggestion.
    suggestions = suggest(description, classifier)
    suggested, confidence = (suggestions[0] if suggestions else (None, None))
    if category_code:
        cat = get_category(session=session, code=category_code)
        confirmed = True
    elif suggested:
        cat = get_category(session=session, code=suggested)
        confirmed = False
    else:
        cat = get_category(session=session, code="09009")  # 政策咨询: a person decides what it really is
        confirmed = False
    prio = priority or ("urgent" if cat.major == "05" else "normal")  # 突发事件 are urgent unless said otherwise

    # Everything that only reads comes first: on SQLite the write lock is then held for the inserts
    # alone, not for classification, routing and the duplicate search.
    inc = Incident(code=f"t{uuid.uuid4().hex[:19]}", channel=channel, status=S.RECEIVED, category_code=cat.code,
                   category_confirmed=confirmed, suggested_code=suggested, suggested_confidence=confidence,
                   priority=prio, description=description, address_text=address or (building.address if building else None),
                   lon=lon, lat=lat, building_id=building.id if building else None, grid_id=loc.grid.id,
                   community_id=loc.community.id, street_id=loc.street.id, reporter_name=reporter_name,
                   reporter_phone=phone, reporter_user_id=reporter_user_id, media_url=media_url, routing="{}",
                   repeat_count=0, return_count=0, reopen_count=0, created_at=now, updated_at=now)
    decision = route(session=session, category_code=cat.code, grid_id=loc.grid.id, community_id=loc.community.id,
                     street_id=loc.street.id, at=now)
    inc.routing = decision.as_json()
    inc.main_department_id = decision.main_department_id
    dup, candidates = find_duplicates(session=session, incident=inc, category=cat)

    session.add(inc)
    session.flush()
    inc.code = f"{as_utc(now).astimezone(SHANGHAI):%Y%m%d}{inc.id:08d}"
    session.add(Reporter(incident_id=inc.id, source_incident_id=inc.id, channel=channel, name=reporter_name,
                         phone=phone, user_id=reporter_user_id, created_at=now))
    entry = _step(session, inc, actor, "receive", S.RECEIVED, channel=channel, category_code=cat.code,
                  suggested_code=suggested, confidence=confidence, routed_by=to_json(decision.why))
    entry.from_status = None
    result = IntakeResult(inc, possible_duplicates=candidates)
    if dup is not None:
        merge(session=session, incident=inc, into=dup, actor=SYSTEM, reason="同类问题在附近已有工单，自动合并")
        result.merged_into = dup
        return result

    certain = confirmed or (confidence is not None and confidence >= ops_settings().auto_dispatch_confidence)
    if decision.main_department_id is not None and (auto_dispatch if auto_dispatch is not None else certain):
        register(session=session, incident=inc, actor=SYSTEM, now=now)
        dispatch(session=session, incident=inc, actor=SYSTEM)
    return result


def find_duplicates(*, session: Session, incident: Incident, category: Category,
                    ) -> tuple[Incident | None, list[tuple[int, float, float]]]:
    """Open incidents of the same category within the category's radius and window, scored by text
    similarity; the same caller reporting the same category again is always a repeat.
    Returns the one to merge into (or None) and every candidate as (id, similarity, metres)."""
    since = as_utc(incident.created_at) - timedelta(hours=category.dup_window_h)
    repo = IntakeRepository(session)
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


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_000
    dx = (lon2 - lon1) * 111_000 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)
