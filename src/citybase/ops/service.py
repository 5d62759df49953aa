"""The closed incident loop: intake from every channel, classification, routing, duplicates,
the workflow 受理 → 立案 → 派遣 → 处置 → 核查 → 结案 with its side paths, deadlines, supervision.

Functions take ``session`` keyword-only and never commit. Every step appends a timeline entry
and queues an event in ``session.info["events"]``; the caller publishes them after the commit
(``citybase.ops.flows.publish_pending``)."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from rapidfuzz import fuzz
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from citybase.core.phones import check_phone
from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.geo import service as geo
from citybase.ops import deadlines, routing
from citybase.ops.catalogue import CATEGORIES, MAJORS, PRIORITIES
from citybase.ops.models import (
    Category,
    ClassifierFeedback,
    Incident,
    Reporter,
    RoutingRule,
    Supervision,
    Task,
    TimelineEntry,
)
from citybase.registry import service as registry

CHANNELS = ("api", "hotline", "inspector", "open311", "iot")
OPEN = ("received", "registered", "dispatched", "handling", "verifying")
TERMINAL = ("closed", "rejected", "merged")
RATINGS = ("满意", "基本满意", "不满意")
MERGE_SIMILARITY = 70.0  # text similarity (0–100) above which a nearby report is merged automatically
SUGGEST_SIMILARITY = 35.0  # below merge, above this: offered to the dispatcher as a possible duplicate
AUTO_DISPATCH_CONFIDENCE = 0.85


class Suggester(Protocol):
    def suggest(self, text: str, k: int = 3) -> list[Any]: ...


@dataclass(frozen=True)
class Actor:
    """Who acts: a name for the timeline, the user id, roles and department (None for the system)."""

    name: str
    user_id: int | None = None
    roles: frozenset[str] = frozenset()
    department_id: int | None = None


SYSTEM = Actor("system", roles=frozenset({"system"}))


@dataclass
class IntakeResult:
    incident: Incident
    merged_into: Incident | None = None
    possible_duplicates: list[tuple[int, float, float]] = field(default_factory=list)  # (id, similarity, metres)


# ---------------------------------------------------------------- catalogue and rules


def seed_catalogue(*, session: Session) -> int:
    """Load the default categories and one district-wide rule per category, plus street-office rules
    for 市容环境 and 街面秩序 and a night rule for noise. Idempotent: does nothing if categories exist."""
    if session.scalar(select(func.count()).select_from(Category)):
        return 0
    depts = {d.short_name: d for d in registry.list_departments(session=session)}
    now = utcnow()
    for c in CATEGORIES:
        session.add(Category(code=c.code, name=c.name, major=c.major, major_name=MAJORS[c.major], kind=c.kind,
                             urgent_hours=c.urgent_hours, normal_days=c.normal_days, low_days=c.low_days,
                             needs_verification=c.verify, dup_radius_m=c.radius_m, dup_window_h=72, active=True))
        session.add(RoutingRule(category_code=c.code, area_id=None, hour_from=None, hour_to=None,
                                main_department_id=depts[c.department].id,
                                assist_department_ids=json.dumps([depts[a].id for a in c.assists]),
                                precedence=100, note=f"权责清单: {c.name} → {c.department}", created_at=now))
    for d in depts.values():
        if d.kind == "street_office" and d.area_id:
            for major, lead in (("01", "绿化市容局"), ("03", "城管执法局")):
                session.add(RoutingRule(category_code=major, area_id=d.area_id, hour_from=None, hour_to=None,
                                        main_department_id=d.id, assist_department_ids=json.dumps([depts[lead].id]),
                                        precedence=50, note=f"街镇属地管理: {MAJORS[major]} → {d.name}",
                                        created_at=now))
    session.add(RoutingRule(category_code="07001", area_id=None, hour_from=22, hour_to=6,
                            main_department_id=depts["公安分局"].id, assist_department_ids="[]", precedence=10,
                            note="夜间社会生活噪声由110联动处置", created_at=now))
    session.flush()
    return len(CATEGORIES)


def find_category(*, session: Session, code: str) -> Category | None:
    """The category with this code (active or not), looked up once per session."""
    known = session.info.setdefault("categories", {})
    if code not in known:
        known[code] = session.scalar(select(Category).where(Category.code == code))
    return known[code]


def get_category(*, session: Session, code: str) -> Category:
    cat = find_category(session=session, code=code)
    if cat is None or not cat.active:
        raise InvalidInput(f"unknown category {code!r}",
                           fix="List categories with GET /api/v1/ops/categories; codes are 2-digit major + 3-digit minor.")
    return cat


def list_categories(*, session: Session, include_inactive: bool = False) -> list[Category]:
    q = select(Category).order_by(Category.code)
    if not include_inactive:
        q = q.where(Category.active.is_(True))
    return list(session.scalars(q))


def upsert_category(*, session: Session, code: str, **fields: Any) -> Category:
    """Create or change a category (admins). Codes are 5 digits whose first two name a major class."""
    if not re.fullmatch(r"\d{5}", code) or code[:2] not in MAJORS:
        raise InvalidInput(f"category code {code!r} is not a known 2-digit major + 3-digit minor",
                           fix=f"Majors are {', '.join(f'{k} {v}' for k, v in MAJORS.items())}.")
    cat = session.scalar(select(Category).where(Category.code == code))
    session.info.pop("categories", None)
    if cat is None:
        required = ("name", "kind", "urgent_hours", "normal_days", "low_days", "needs_verification", "dup_radius_m")
        missing = [k for k in required if fields.get(k) is None]
        if missing:
            raise InvalidInput(f"a new category needs {', '.join(missing)}", fix="Send every field of the category.")
        cat = Category(code=code, major=code[:2], major_name=MAJORS[code[:2]], dup_window_h=72, active=True)
        session.add(cat)
    for k, v in fields.items():
        if v is not None:
            setattr(cat, k, v)
    session.flush()
    return cat


def active_rules(*, session: Session) -> list[RoutingRule]:
    return list(session.scalars(select(RoutingRule).where(RoutingRule.retired_at.is_(None)).order_by(RoutingRule.id)))


_rules_cache: dict[Any, tuple[tuple[int, int, int], list[RoutingRule]]] = {}


def _rules_for_routing(session: Session) -> list[RoutingRule]:
    """Active rules, cached per database and refreshed whenever a rule is added or retired anywhere
    (the version is the highest id and the count of active rules: adding raises one, retiring lowers the other)."""
    version = tuple(session.execute(select(func.max(RoutingRule.id), func.count(), func.max(RoutingRule.precedence))
                                    .where(RoutingRule.retired_at.is_(None))).one())
    key = session.get_bind().url
    hit = _rules_cache.get(key)
    if hit and hit[0] == version:
        return hit[1]
    rules = active_rules(session=session)
    for r in rules:
        session.expunge(r)  # detached copies, shared read-only between requests
    _rules_cache[key] = (version, rules)
    return rules


def add_rule(*, session: Session, category_code: str | None, area_code: str | None, hour_from: int | None,
             hour_to: int | None, main_department: str, assist_departments: list[str], precedence: int = 100,
             note: str = "", replaces_id: int | None = None) -> RoutingRule:
    """Add a rule (or a new version of rule ``replaces_id``, which is retired, never rewritten)."""
    if category_code is not None and not (re.fullmatch(r"\d{2}", category_code) or re.fullmatch(r"\d{5}", category_code)):
        raise InvalidInput(f"category_code {category_code!r} must be a 2-digit major or 5-digit category",
                           fix="Leave it empty for any category.")
    if category_code and len(category_code) == 5:
        get_category(session=session, code=category_code)
    if (hour_from is None) != (hour_to is None):
        raise InvalidInput("hour_from and hour_to go together", fix="Give both (e.g. 22 and 6) or neither.")
    area_id = geo.get_area(session=session, code=area_code).id if area_code else None
    main = registry.get_department(session=session, code=main_department)
    assists = [registry.get_department(session=session, code=c).id for c in assist_departments]
    now = utcnow()
    if replaces_id is not None:
        old = session.get(RoutingRule, replaces_id)
        if old is None or old.retired_at is not None:
            raise NotFound(f"no active rule #{replaces_id}", fix="List rules with GET /api/v1/ops/rules.")
        old.retired_at = now
    rule = RoutingRule(category_code=category_code, area_id=area_id, hour_from=hour_from, hour_to=hour_to,
                       main_department_id=main.id, assist_department_ids=json.dumps(assists), precedence=precedence,
                       note=note, created_at=now, replaces_id=replaces_id)
    session.add(rule)
    session.flush()
    return rule


def retire_rule(*, session: Session, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    if rule is None or rule.retired_at is not None:
        raise NotFound(f"no active rule #{rule_id}", fix="List rules with GET /api/v1/ops/rules.")
    rule.retired_at = utcnow()
    return rule


def route(*, session: Session, category_code: str, grid_id: int, community_id: int, street_id: int,
          at: datetime | None = None) -> routing.Decision:
    """The routing decision for a category at a place and time; InvalidInput if no rule covers it."""
    hour = as_utc(at or utcnow()).astimezone(SHANGHAI).hour
    areas = geo.areas_by_id(session=session)
    names = {i: f"{areas[i].name} {areas[i].code}" for i in (grid_id, community_id, street_id) if i in areas}
    d = routing.decide(_rules_for_routing(session), category_code=category_code,
                       area_levels={grid_id: 3, community_id: 2, street_id: 1}, hour=hour, area_names=names)
    if d is None:
        raise InvalidInput(f"no responsibility rule covers category {category_code}",
                           fix="An admin adds one with POST /api/v1/ops/rules.")
    return d


# ---------------------------------------------------------------- classification


def keyword_suggest(text: str, categories: Iterable[Any] = CATEGORIES, k: int = 3) -> list[tuple[str, float]]:
    """A transparent fallback when no trained model is loaded: catalogue keywords and names."""
    scores = []
    for c in categories:
        hits = sum(1 for w in c.keywords if w in text) + (2 if c.name in text else 0)
        if hits:
            scores.append((c.code, hits))
    total = sum(s for _, s in scores) or 1
    scores.sort(key=lambda x: -x[1])
    return [(code, round(s / total, 3)) for code, s in scores[:k]]


def suggest(text: str, classifier: Suggester | None) -> list[tuple[str, float]]:
    if classifier is not None:
        return [(s.code, float(s.confidence)) for s in classifier.suggest(text, k=3)]
    return keyword_suggest(text)


# ---------------------------------------------------------------- helpers


def _events(session: Session) -> list[tuple[str, dict[str, Any]]]:
    return session.info.setdefault("events", [])


def _step(session: Session, inc: Incident, actor: Actor, action: str, to_status: str, *, reason: str | None = None,
          **data: Any) -> TimelineEntry:
    now = utcnow()
    entry = TimelineEntry(incident_id=inc.id, at=now, actor=actor.name, action=action, from_status=inc.status,
                          to_status=to_status, reason=reason, data=json.dumps(data, ensure_ascii=False, default=str))
    inc.status = to_status
    inc.updated_at = now
    session.add(entry)
    _events(session).append((f"citybase.ops.incident.{action}", {
        "incident_id": inc.id, "code": inc.code, "status": to_status, "category_code": inc.category_code,
        "main_department_id": inc.main_department_id, "street_id": inc.street_id, "grid_id": inc.grid_id,
        "actor": actor.name, "reason": reason, **{k: v for k, v in data.items() if isinstance(v, str | int | float)}}))
    return entry


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * 111_000
    dx = (lon2 - lon1) * 111_000 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


def get_incident(*, session: Session, incident_id: int, lock: bool = False) -> Incident:
    """The incident, or NotFound. ``lock`` takes its row lock on PostgreSQL (FOR UPDATE) so a step waits for
    a concurrent one; SQLite has no row locks, and there the version column makes the later of two
    conflicting steps fail at flush (StaleDataError, answered 409) instead of overwriting the first."""
    q = select(Incident).where(Incident.id == incident_id)
    if lock:
        q = q.with_for_update()
    inc = session.scalar(q)
    if inc is None:
        raise NotFound(f"no incident #{incident_id}", fix="List incidents with GET /api/v1/ops/incidents.")
    return inc


def _require(inc: Incident, allowed: Iterable[str], action: str) -> None:
    allowed = tuple(allowed)
    if inc.suspended_at is not None and action != "resume":
        raise Conflict(f"incident {inc.code} is suspended (挂起); {action} is not possible now",
                       fix="Resume it first with the resume action.")
    if inc.status not in allowed:
        raise Conflict(f"cannot {action} incident {inc.code} while it is {inc.status}",
                       fix=f"{action} is possible only when the incident is {' or '.join(allowed)}.",
                       status_now=inc.status)


# ---------------------------------------------------------------- intake


def intake(*, session: Session, channel: str, description: str, actor: Actor = SYSTEM,
           category_code: str | None = None, lon: float | None = None, lat: float | None = None,
           address: str | None = None, building_id: int | None = None, priority: str | None = None,
           reporter_name: str | None = None, reporter_phone: str | None = None, reporter_user_id: int | None = None,
           media_url: str | None = None, classifier: Suggester | None = None,
           auto_dispatch: bool | None = None, now: datetime | None = None) -> IntakeResult:
    """Take one report from any channel: locate it (point, building or address in words), suggest a
    category, find duplicates (merge or suggest), route it, and store it with its first timeline entry.

    A report whose category is certain (given by the channel, or suggested with high confidence) is
    registered and dispatched at once by the system; others wait for a dispatcher."""
    now = now or utcnow()
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}", fix=f"Use one of {', '.join(CHANNELS)}.")
    description = (description or "").strip()
    if not description:
        raise InvalidInput("the description is empty", fix="Say what the problem is, in a sentence.")
    if len(description) > 2000:
        raise InvalidInput("the description is longer than 2,000 characters", fix="Shorten it.")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput(f"unknown priority {priority!r}", fix=f"Use one of {', '.join(PRIORITIES)}.")
    phone = check_phone(reporter_phone)

    # Where: a building, an address in words, or a point.
    building = None
    if building_id is not None:
        building = geo.get_building(session=session, building_id=building_id)
    elif address and (lon is None or lat is None):
        building = geo.building_at_address(session=session, text=address)
        if building is None:
            raise InvalidInput(f"the address {address!r} matches no building of the city",
                               fix="Give the road and number (e.g. 漕溪北路101弄3号), or a point (lon, lat).")
    if building is not None:
        lon, lat = building.lon, building.lat
    if lon is None or lat is None:
        raise InvalidInput("the report has no location", fix="Give lon and lat, a building_id, or an address.")
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
    inc = Incident(code=f"t{uuid.uuid4().hex[:19]}", channel=channel, status="received", category_code=cat.code,
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
    entry = _step(session, inc, actor, "receive", "received", channel=channel, category_code=cat.code,
                  suggested_code=suggested, confidence=confidence, routed_by=decision.why)
    entry.from_status = None
    result = IntakeResult(inc, possible_duplicates=candidates)
    if dup is not None:
        merge(session=session, incident=inc, into=dup, actor=SYSTEM, reason="同类问题在附近已有工单，自动合并")
        result.merged_into = dup
        return result

    certain = confirmed or (confidence is not None and confidence >= AUTO_DISPATCH_CONFIDENCE)
    if auto_dispatch if auto_dispatch is not None else certain:
        register(session=session, incident=inc, actor=SYSTEM, now=now)
        dispatch(session=session, incident=inc, actor=SYSTEM)
    return result


def find_duplicates(*, session: Session, incident: Incident, category: Category,
                    ) -> tuple[Incident | None, list[tuple[int, float, float]]]:
    """Open incidents of the same category within the category's radius and window, scored by text
    similarity; the same caller reporting the same category again is always a repeat.
    Returns the one to merge into (or None) and every candidate as (id, similarity, metres)."""
    since = as_utc(incident.created_at) - timedelta(hours=category.dup_window_h)
    # Plain rows, not ORM objects: with many open incidents nearby this is the hot path of intake.
    q = select(Incident.id, Incident.lat, Incident.lon, Incident.description).where(
        Incident.category_code == category.code, Incident.status.in_(OPEN), Incident.created_at >= since)
    if incident.id is not None:
        q = q.where(Incident.id != incident.id)
    radius = category.dup_radius_m
    found: dict[int, tuple[float, float]] = {}
    if radius > 0:
        dlat = radius / 111_000
        dlon = radius / (111_000 * math.cos(math.radians(incident.lat)))
        near = q.where(Incident.lat.between(incident.lat - dlat, incident.lat + dlat),
                       Incident.lon.between(incident.lon - dlon, incident.lon + dlon)).limit(200)
        for oid, lat, lon, text in session.execute(near):
            dist = _metres(incident.lat, incident.lon, lat, lon)
            if dist <= radius:
                sim = max(fuzz.ratio(incident.description, text),
                          fuzz.partial_ratio(incident.description, text) * 0.9)
                found[oid] = (sim, dist)
    if incident.reporter_phone:
        for oid, lat, lon, _ in session.execute(q.where(Incident.reporter_phone == incident.reporter_phone).limit(20)):
            found[oid] = (100.0, _metres(incident.lat, incident.lon, lat, lon))  # the same caller again
    ranked = sorted(found.items(), key=lambda t: (-t[1][0], t[1][1]))
    candidates = [(oid, round(sim, 1), round(d, 1)) for oid, (sim, d) in ranked if sim >= SUGGEST_SIMILARITY]
    target = session.get(Incident, ranked[0][0]) if ranked and ranked[0][1][0] >= MERGE_SIMILARITY else None
    while target is not None and target.parent_id is not None:
        target = session.get(Incident, target.parent_id)
    return target, candidates


def merge(*, session: Session, incident: Incident, into: Incident, actor: Actor, reason: str) -> Incident:
    """Fold ``incident`` into ``into``: its reporters are told the outcome of ``into``; repeats are counted."""
    if incident.id == into.id:
        raise InvalidInput("an incident cannot be merged into itself", fix="Choose another incident.")
    _require(incident, ("received", "registered"), "merge")
    if into.status in ("rejected", "merged"):
        raise Conflict(f"incident {into.code} is {into.status}; merge into an open or closed one",
                       fix="Choose the incident that is being handled.")
    incident.parent_id = into.id
    for r in session.scalars(select(Reporter).where(Reporter.incident_id == incident.id)):
        r.incident_id = into.id
    into.repeat_count = (into.repeat_count or 0) + 1
    _step(session, incident, actor, "merge", "merged", reason=reason, into=into.code)
    _events(session).append(("citybase.ops.incident.repeat", {"incident_id": into.id, "code": into.code,
                                                               "repeat_count": into.repeat_count,
                                                               "merged_id": incident.id}))
    session.add(TimelineEntry(incident_id=into.id, at=utcnow(), actor=actor.name, action="absorb",
                              from_status=into.status, to_status=into.status, reason=reason,
                              data=json.dumps({"merged": incident.code}, ensure_ascii=False)))
    if into.status == "closed":
        _notify_reporters(session, into)
    return incident


# ---------------------------------------------------------------- the workflow


def _start_clock(inc: Incident, cat: Category, now: datetime) -> None:
    if inc.priority == "urgent":
        mode, budget = "natural", cat.urgent_hours * 3600
    else:
        days = cat.normal_days if inc.priority == "normal" else cat.low_days
        mode, budget = "working", days * deadlines.WORKDAY_SECONDS
    inc.deadline_mode, inc.budget_seconds = mode, budget
    inc.warn_at, inc.deadline_at = deadlines.plan(now, mode=mode, budget_seconds=budget)


def register(*, session: Session, incident: Incident, actor: Actor, category_code: str | None = None,
             priority: str | None = None, now: datetime | None = None) -> Incident:
    """立案: confirm category and priority; the deadline clock starts. A changed category is kept as
    feedback for the next classifier training and re-routes the incident."""
    _require(incident, ("received", "registered"), "register")
    now = now or utcnow()
    if priority is not None:
        if priority not in PRIORITIES:
            raise InvalidInput(f"unknown priority {priority!r}", fix=f"Use one of {', '.join(PRIORITIES)}.")
        incident.priority = priority
    if category_code and category_code != incident.category_code:
        get_category(session=session, code=category_code)
        session.add(ClassifierFeedback(incident_id=incident.id, text=incident.description,
                                       suggested_code=incident.suggested_code, chosen_code=category_code,
                                       actor=actor.name, created_at=now))
        incident.category_code = category_code
        d = route(session=session, category_code=category_code, grid_id=incident.grid_id,
                  community_id=incident.community_id, street_id=incident.street_id, at=now)
        incident.routing, incident.main_department_id = d.as_json(), d.main_department_id
    incident.category_confirmed = True
    cat = get_category(session=session, code=incident.category_code)
    _start_clock(incident, cat, now)
    incident.registered_at = now
    _step(session, incident, actor, "register", "registered", category_code=incident.category_code,
          priority=incident.priority, deadline_at=incident.deadline_at.isoformat())
    return incident


def reject(*, session: Session, incident: Incident, actor: Actor, reason: str) -> Incident:
    """不予立案 with a reason; the reporters are told."""
    _require(incident, ("received",), "reject")
    if not reason or not reason.strip():
        raise InvalidInput("a rejection needs a reason", fix="Say why the report is not taken up.")
    incident.closed_at = utcnow()
    _step(session, incident, actor, "reject", "rejected", reason=reason)
    _notify_reporters(session, incident, outcome=f"不予立案: {reason}")
    return incident


def dispatch(*, session: Session, incident: Incident, actor: Actor, main_department_id: int | None = None,
             assist_department_ids: list[int] | None = None) -> Incident:
    """派遣: one task for the main department and one per assisting department (routing by default)."""
    if incident.status == "received":
        register(session=session, incident=incident, actor=actor)
    _require(incident, ("registered",), "dispatch")
    decision = json.loads(incident.routing)
    main = main_department_id or decision.get("main_department_id")
    assists = assist_department_ids if assist_department_ids is not None else decision.get("assist_department_ids", [])
    if main_department_id is not None or assist_department_ids is not None:  # a person chose: check the ids
        for d in [main, *assists]:
            registry.get_department_by_id(session=session, department_id=d)
    now = utcnow()
    if incident.dispatched_at is not None:  # a re-dispatch replaces the open tasks (a first one has none)
        for t in session.scalars(select(Task).where(Task.incident_id == incident.id,
                                                    Task.status.in_(("pending", "accepted")))):
            t.status = "cancelled"
    incident.main_department_id = main
    session.add(Task(incident_id=incident.id, department_id=main, role="main", status="pending", created_at=now))
    for a in assists:
        if a != main:
            session.add(Task(incident_id=incident.id, department_id=a, role="assist", status="pending", created_at=now))
    incident.dispatched_at = now
    _step(session, incident, actor, "dispatch", "dispatched", main_department_id=main,
          assist_department_ids=json.dumps(assists))
    return incident


def tasks_of(*, session: Session, incident_id: int) -> list[Task]:
    return list(session.scalars(select(Task).where(Task.incident_id == incident_id).order_by(Task.id)))


def _own_task(session: Session, incident: Incident, actor: Actor, task_id: int | None) -> Task:
    q = select(Task).where(Task.incident_id == incident.id, Task.status.in_(("pending", "accepted")))
    if task_id is not None:
        q = q.where(Task.id == task_id)
    elif actor.department_id is not None:
        q = q.where(Task.department_id == actor.department_id)
    task = session.scalar(q.order_by(Task.id))
    if task is None:
        raise Conflict(f"incident {incident.code} has no open task for you",
                       fix="Only a department with a pending or accepted task can act on it.")
    if "admin" not in actor.roles and actor.department_id != task.department_id and "system" not in actor.roles:
        raise Forbidden(f"task #{task.id} belongs to another department",
                        fix="Handlers act only on their own department's tasks.")
    return task


def accept(*, session: Session, incident: Incident, actor: Actor, task_id: int | None = None) -> Task:
    """A department accepts its task; the incident is being handled (处置)."""
    _require(incident, ("dispatched", "handling"), "accept")
    task = _own_task(session, incident, actor, task_id)
    if task.status != "pending":
        raise Conflict(f"task #{task.id} is already {task.status}", fix="Complete or return it instead.")
    task.status, task.accepted_at = "accepted", utcnow()
    _step(session, incident, actor, "accept", "handling", task_id=task.id, department_id=task.department_id)
    return task


def return_task(*, session: Session, incident: Incident, actor: Actor, reason: str, task_id: int | None = None) -> Task:
    """退单: a department sends the incident back to the dispatcher with a reason."""
    _require(incident, ("dispatched", "handling"), "return")
    if not reason or not reason.strip():
        raise InvalidInput("a return needs a reason", fix="Say why this is not your department's case.")
    task = _own_task(session, incident, actor, task_id)
    task.status, task.result = "returned", reason
    for t in session.scalars(select(Task).where(Task.incident_id == incident.id, Task.status.in_(("pending", "accepted")))):
        t.status = "cancelled"
    incident.return_count = (incident.return_count or 0) + 1
    _step(session, incident, actor, "return", "registered", reason=reason, task_id=task.id,
          department_id=task.department_id)
    return task


def complete_task(*, session: Session, incident: Incident, actor: Actor, result: str, task_id: int | None = None) -> Task:
    """A department reports its task done. When every task is done the incident goes to 核查
    (or straight to 结案 when its category needs no verification)."""
    _require(incident, ("handling", "dispatched"), "complete")
    if not result or not result.strip():
        raise InvalidInput("a completed task needs a result", fix="Say what was done.")
    task = _own_task(session, incident, actor, task_id)
    if task.status == "pending":
        task.accepted_at = utcnow()
    task.status, task.result, task.done_at = "done", result, utcnow()
    open_tasks = session.scalar(select(func.count()).select_from(Task).where(
        Task.incident_id == incident.id, Task.status.in_(("pending", "accepted"))))
    if open_tasks:
        _step(session, incident, actor, "complete_task", "handling", task_id=task.id, result=result)
        return task
    _step(session, incident, actor, "complete", "verifying", task_id=task.id, result=result)
    if not get_category(session=session, code=incident.category_code).needs_verification:
        close(session=session, incident=incident, actor=SYSTEM, reason=f"无需核查，处置完成即结案：{result}")
    return task


def verify(*, session: Session, incident: Incident, actor: Actor, passed: bool, note: str) -> Incident:
    """核查 by a grid inspector or dispatcher: passing closes the incident, failing sends every task back."""
    _require(incident, ("verifying",), "verify")
    if not note or not note.strip():
        raise InvalidInput("a verification needs a note", fix="Say what you saw on site.")
    if passed:
        _step(session, incident, actor, "verify", "verifying", reason=note, passed=1)
        return close(session=session, incident=incident, actor=actor, reason=note)
    now = utcnow()
    for t in session.scalars(select(Task).where(Task.incident_id == incident.id, Task.status == "done")):
        session.add(Task(incident_id=incident.id, department_id=t.department_id, role=t.role, status="pending",
                         created_at=now))
    incident.reopen_count = (incident.reopen_count or 0) + 1
    _step(session, incident, actor, "verify_failed", "dispatched", reason=note, passed=0)
    return incident


def close(*, session: Session, incident: Incident, actor: Actor, reason: str) -> Incident:
    """结案: the clock stops and every reporter is told the outcome."""
    _require(incident, ("verifying", "registered"), "close")
    incident.closed_at = utcnow()
    for s in session.scalars(select(Supervision).where(Supervision.incident_id == incident.id,
                                                       Supervision.resolved_at.is_(None))):
        s.resolved_at = incident.closed_at
    _step(session, incident, actor, "close", "closed", reason=reason, on_time=int(on_time(incident) or 0))
    _notify_reporters(session, incident)
    return incident


def on_time(inc: Incident) -> bool | None:
    """Closed by its deadline (None while open or without a deadline)."""
    if inc.closed_at is None or inc.deadline_at is None:
        return None
    return as_utc(inc.closed_at) <= as_utc(inc.deadline_at)


def _notify_reporters(session: Session, inc: Incident, outcome: str | None = None) -> None:
    last = session.scalar(select(TimelineEntry).where(TimelineEntry.incident_id == inc.id)
                          .order_by(TimelineEntry.id.desc()).limit(1))
    text = outcome or f"您反映的问题（工单 {inc.code}）已办结：{(last.reason if last and last.reason else '已处置')}"
    now = utcnow()
    for r in session.scalars(select(Reporter).where(Reporter.incident_id == inc.id, Reporter.notified_at.is_(None))):
        r.notified_at, r.outcome = now, text
        _events(session).append(("citybase.ops.reporter.notified", {"incident_id": inc.id, "code": inc.code,
                                                                    "reporter_id": r.id, "channel": r.channel,
                                                                    "source_incident_id": r.source_incident_id}))


def rate(*, session: Session, incident: Incident, actor: Actor, rating: str, comment: str | None = None) -> Incident:
    """The reporter's say after closing: 满意 / 基本满意 / 不满意; 不满意 reopens it for review."""
    _require(incident, ("closed",), "rate")
    if rating not in RATINGS:
        raise InvalidInput(f"unknown rating {rating!r}", fix=f"Use one of {' / '.join(RATINGS)}.")
    incident.satisfaction = rating
    if rating == "不满意":
        incident.reopen_count = (incident.reopen_count or 0) + 1
        incident.closed_at = None
        for r in session.scalars(select(Reporter).where(Reporter.incident_id == incident.id)):
            r.notified_at = None
        _step(session, incident, actor, "reopen", "registered", reason=comment or "报告人不满意，重新审核", rating=rating)
    else:
        _step(session, incident, actor, "rate", "closed", reason=comment, rating=rating)
    return incident


def suspend(*, session: Session, incident: Incident, actor: Actor, reason: str) -> Incident:
    """挂起: the deadline clock stops until resumed."""
    _require(incident, OPEN, "suspend")
    if not reason or not reason.strip():
        raise InvalidInput("suspending needs a reason", fix="Say what the incident is waiting for.")
    incident.suspended_at = utcnow()
    _step(session, incident, actor, "suspend", incident.status, reason=reason)
    return incident


def resume(*, session: Session, incident: Incident, actor: Actor) -> Incident:
    """The clock runs again; deadline and warning are pushed back by the time suspended."""
    if incident.suspended_at is None:
        raise Conflict(f"incident {incident.code} is not suspended", fix="Only a suspended incident can be resumed.")
    now = utcnow()
    if incident.deadline_at is not None:
        kw = {"mode": incident.deadline_mode, "paused_from": incident.suspended_at, "paused_to": now}
        incident.deadline_at = deadlines.shift(incident.deadline_at, **kw)
        incident.warn_at = deadlines.shift(incident.warn_at, **kw)
    paused = incident.suspended_at
    incident.suspended_at = None
    _step(session, incident, actor, "resume", incident.status, suspended_since=as_utc(paused).isoformat())
    return incident


def request_extension(*, session: Session, incident: Incident, actor: Actor, days: int, reason: str) -> Incident:
    """延期 requested by the handling department (approved or refused by a dispatcher)."""
    _require(incident, ("dispatched", "handling"), "request an extension for")
    _own_task(session, incident, actor, None)
    if not 1 <= days <= 30:
        raise InvalidInput("an extension is 1 to 30 days", fix="Ask for the days you need, at most 30.")
    if not reason or not reason.strip():
        raise InvalidInput("an extension needs a reason", fix="Say why more time is needed.")
    if incident.extension_days:
        raise Conflict(f"incident {incident.code} already has an extension request pending",
                       fix="Wait for the dispatcher's decision.")
    incident.extension_days, incident.extension_reason = days, reason
    _step(session, incident, actor, "extension_requested", incident.status, reason=reason, days=days)
    return incident


def decide_extension(*, session: Session, incident: Incident, actor: Actor, approve: bool, note: str | None = None) -> Incident:
    """Approve (deadline moves) or refuse a pending extension request."""
    if not incident.extension_days:
        raise Conflict(f"incident {incident.code} has no extension request", fix="Nothing to decide.")
    days = incident.extension_days
    if approve and incident.deadline_at is not None:
        incident.deadline_at = deadlines.extend(incident.deadline_at, mode=incident.deadline_mode, days=days)
        incident.warn_at = deadlines.extend(incident.warn_at, mode=incident.deadline_mode, days=days)
    incident.extension_days, incident.extension_reason = None, None
    _step(session, incident, actor, "extension_approved" if approve else "extension_refused", incident.status,
          reason=note, days=days, deadline_at=incident.deadline_at.isoformat() if incident.deadline_at else None)
    return incident


def first_contact(*, session: Session, incident: Incident, actor: Actor, note: str) -> Incident:
    """先行联系: the handling department has called the reporter."""
    _require(incident, ("dispatched", "handling", "verifying"), "record first contact for")
    if incident.first_contact_at is None:
        incident.first_contact_at = utcnow()
    _step(session, incident, actor, "first_contact", incident.status, reason=note)
    return incident


# ---------------------------------------------------------------- supervision


def supervise_overdue(*, session: Session, now: datetime | None = None, limit: int = 1000) -> list[Supervision]:
    """督办: raise one supervision for each open, unsuspended incident past its deadline, addressed to the
    main department's supervisor; each also becomes a bus event. Never commits.

    Safe when several processes sweep at once: on PostgreSQL each takes its candidates with
    ``FOR UPDATE SKIP LOCKED`` (so they share the work out); on both engines only the sweep whose
    compare-and-set ``UPDATE … WHERE supervised_at IS NULL`` matched the row raises the supervision,
    and a unique key on (incident, missed deadline) refuses a second one."""
    now = now or utcnow()
    due = (Incident.status.in_(OPEN), Incident.deadline_at < now, Incident.suspended_at.is_(None),
           Incident.supervised_at.is_(None))
    # SQLite renders no FOR UPDATE (it has one writer at a time); there the compare-and-set alone decides.
    ids = list(session.scalars(select(Incident.id).where(*due).order_by(Incident.deadline_at, Incident.id)
                               .limit(limit).with_for_update(skip_locked=True)))
    if not ids:
        return []
    won = session.execute(
        update(Incident).where(Incident.id.in_(ids), *due)
        .values(supervised_at=now, version=Incident.version + 1)
        .returning(Incident.id, Incident.code, Incident.status, Incident.main_department_id, Incident.deadline_at)
        .execution_options(synchronize_session=False)).all()
    raised = {row.id for row in won}
    for obj in list(session.identity_map.values()):  # copies this session holds are now out of date
        if isinstance(obj, Incident) and obj.id in raised:
            session.expire(obj)
    out = []
    for iid, code, status, dept, deadline in sorted(won):
        s = Supervision(incident_id=iid, department_id=dept, deadline_at=deadline, created_at=now,
                        reason=f"超期未办结：期限 {as_utc(deadline).astimezone(SHANGHAI):%Y-%m-%d %H:%M}")
        session.add(s)
        out.append(s)
        session.add(TimelineEntry(incident_id=iid, at=now, actor="system", action="supervise",
                                  from_status=status, to_status=status, reason=s.reason, data="{}"))
        _events(session).append(("citybase.ops.incident.supervised", {
            "incident_id": iid, "code": code, "department_id": dept, "deadline_at": as_utc(deadline).isoformat()}))
    session.flush()
    return out


def timeline(*, session: Session, incident_id: int) -> list[TimelineEntry]:
    return list(session.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
                                .order_by(TimelineEntry.id)))


def reporters(*, session: Session, incident_id: int) -> list[Reporter]:
    return list(session.scalars(select(Reporter).where(Reporter.incident_id == incident_id).order_by(Reporter.id)))
