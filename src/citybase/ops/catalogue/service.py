"""The catalogue: categories and responsibility rules, and the routing decision they make.

Functions take ``session`` keyword-only and never commit."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput, NotFound
from citybase.core.i18n import Msg
from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.geo import service as geo
from citybase.kernel.runtime import invalidate
from citybase.ops.catalogue import routing
from citybase.ops.catalogue.defaults import CATEGORIES, MAJORS
from citybase.ops.catalogue.models import Category, RoutingRule
from citybase.ops.catalogue.repository import CatalogueRepository
from citybase.registry import service as registry


def seed_catalogue(*, session: Session) -> int:
    """Load the default categories and one district-wide rule per category, plus street-office rules
    for 市容环境 and 街面秩序 and a night rule for noise. Idempotent: does nothing if categories exist."""
    if CatalogueRepository(session).count_categories():
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
        known[code] = CatalogueRepository(session).category(code)
    return known[code]


def get_category(*, session: Session, code: str) -> Category:
    """The active category with this code; InvalidInput when there is none."""
    cat = find_category(session=session, code=code)
    if cat is None or not cat.active:
        raise InvalidInput(Msg('unknown category {code!r}', code=code),
                           fix=Msg('List categories with GET /api/v1/ops/categories; codes are 2-digit major + 3-digit minor.'))
    return cat


def list_categories(*, session: Session, include_inactive: bool = False) -> list[Category]:
    """Categories by code (active ones unless ``include_inactive``)."""
    return CatalogueRepository(session).categories(include_inactive=include_inactive)


def upsert_category(*, session: Session, code: str, **fields: Any) -> Category:
    """Create or change a category (admins). Codes are 5 digits whose first two name a major class."""
    if not re.fullmatch(r"\d{5}", code) or code[:2] not in MAJORS:
        raise InvalidInput(Msg('category code {code!r} is not a known 2-digit major + 3-digit minor', code=code),
                           fix=Msg('Majors are {items}.', items=', '.join(f'{k} {v}' for k, v in MAJORS.items())))
    cat = CatalogueRepository(session).category(code)
    session.info.pop("categories", None)
    if cat is None:
        required = ("name", "kind", "urgent_hours", "normal_days", "low_days", "needs_verification", "dup_radius_m")
        missing = [k for k in required if fields.get(k) is None]
        if missing:
            raise InvalidInput(Msg('a new category needs {items}', items=', '.join(missing)), fix=Msg('Send every field of the category.'))
        cat = Category(code=code, major=code[:2], major_name=MAJORS[code[:2]], dup_window_h=72, active=True)
        session.add(cat)
    for k, v in fields.items():
        if v is not None:
            setattr(cat, k, v)
    session.flush()
    invalidate(session, "ops.catalogue")
    return cat


def active_rules(*, session: Session) -> list[RoutingRule]:
    """The responsibility rules in force, oldest first."""
    return CatalogueRepository(session).active_rules()


_rules_cache: dict[Any, tuple[tuple[int, int, int], list[RoutingRule]]] = {}


def forget_rules() -> None:
    """Drop this process's cached routing rules (re-read on the next routing)."""
    _rules_cache.clear()


def _rules_for_routing(session: Session) -> list[RoutingRule]:
    """Active rules, cached per database and refreshed whenever a rule is added or retired anywhere
    (the version is the highest id and the count of active rules: adding raises one, retiring lowers the other)."""
    version = CatalogueRepository(session).rules_version()
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
        raise InvalidInput(Msg('category_code {category_code!r} must be a 2-digit major or 5-digit category', category_code=category_code),
                           fix=Msg('Leave it empty for any category.'))
    if category_code and len(category_code) == 5:
        get_category(session=session, code=category_code)
    if (hour_from is None) != (hour_to is None):
        raise InvalidInput(Msg('hour_from and hour_to go together'), fix=Msg('Give both (e.g. 22 and 6) or neither.'))
    area_id = geo.get_area(session=session, code=area_code).id if area_code else None
    main = registry.get_department(session=session, code=main_department)
    assists = [registry.get_department(session=session, code=c).id for c in assist_departments]
    now = utcnow()
    if replaces_id is not None:
        old = CatalogueRepository(session).rule(replaces_id)
        if old is None or old.retired_at is not None:
            raise NotFound(Msg('no active rule #{replaces_id}', replaces_id=replaces_id), fix=Msg('List rules with GET /api/v1/ops/rules.'))
        old.retired_at = now
    rule = RoutingRule(category_code=category_code, area_id=area_id, hour_from=hour_from, hour_to=hour_to,
                       main_department_id=main.id, assist_department_ids=json.dumps(assists), precedence=precedence,
                       note=note, created_at=now, replaces_id=replaces_id)
    session.add(rule)
    session.flush()
    invalidate(session, "ops.catalogue")
    return rule


def retire_rule(*, session: Session, rule_id: int) -> RoutingRule:
    """Retire an active rule (history keeps it); NotFound when there is no such active rule."""
    rule = CatalogueRepository(session).rule(rule_id)
    if rule is None or rule.retired_at is not None:
        raise NotFound(Msg('no active rule #{rule_id}', rule_id=rule_id), fix=Msg('List rules with GET /api/v1/ops/rules.'))
    rule.retired_at = utcnow()
    invalidate(session, "ops.catalogue")
    return rule


def route(*, session: Session, category_code: str, grid_id: int, community_id: int, street_id: int,
          at: datetime | None = None) -> routing.Decision:
    """The routing decision for a category at a place and time; when no rule covers it, a decision with
    no department (a report is never refused for want of a rule: it waits for a dispatcher)."""
    hour = as_utc(at or utcnow()).astimezone(SHANGHAI).hour
    areas = geo.areas_by_id(session=session)
    names = {i: f"{areas[i].name} {areas[i].code}" for i in (grid_id, community_id, street_id) if i in areas}
    d = routing.decide(_rules_for_routing(session), category_code=category_code,
                       area_levels={grid_id: 3, community_id: 2, street_id: 1}, hour=hour, area_names=names)
    return d if d is not None else routing.unrouted(category_code)


def category_names(*, session: Session) -> dict[str, str]:
    """Every category's name by code (inactive ones too)."""
    return CatalogueRepository(session).category_names()
