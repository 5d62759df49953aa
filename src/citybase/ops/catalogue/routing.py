"""Responsibility rules (权责清单): which department handles a category, where and when.

The most specific matching rule wins, place first: a grid beats a community, a street and the
whole district (a local rule is a deliberate override of the district's list); then an exact
category beats its major class, which beats any category; then a rule with an hour window beats
an all-day one; remaining ties go to the lower precedence, then the newer rule."""

from __future__ import annotations

import json
from dataclasses import dataclass

from citybase.core.i18n import Msg, to_json
from citybase.ops.catalogue.models import RoutingRule


@dataclass(frozen=True)
class Decision:
    """Where a report goes: a rule's department, or none (``rule_id`` None) when no rule covers it."""

    rule_id: int | None
    main_department_id: int | None
    assist_department_ids: tuple[int, ...]
    why: str  # a Msg: shown in the reader's language

    def as_json(self) -> str:
        """The decision as stored with the incident (``why`` in English, ``why_msg`` to render in any language)."""
        return json.dumps({"rule_id": self.rule_id, "main_department_id": self.main_department_id,
                           "assist_department_ids": list(self.assist_department_ids), "why": str(self.why),
                           "why_msg": to_json(self.why)}, ensure_ascii=False)


def unrouted(category_code: str) -> Decision:
    """The decision when no rule covers a category: no department, a dispatcher chooses one."""
    return Decision(None, None, (), Msg("no responsibility rule covers category {code}: a dispatcher chooses the department",
                                        code=category_code))


def _hour_matches(rule: RoutingRule, hour: int) -> bool:
    if rule.hour_from is None or rule.hour_to is None:
        return True
    if rule.hour_from <= rule.hour_to:
        return rule.hour_from <= hour < rule.hour_to
    return hour >= rule.hour_from or hour < rule.hour_to  # window across midnight, e.g. 22–6


def decide(rules: list[RoutingRule], *, category_code: str, area_levels: dict[int, int], hour: int,
           area_names: dict[int, str] | None = None) -> Decision | None:
    """The decision of the best matching active rule, or None when no rule covers the case.

    ``area_levels`` maps the incident's area ids (grid, community, street) to their specificity
    (3 for grid, 2 community, 1 street)."""
    best: tuple | None = None
    chosen: RoutingRule | None = None
    for r in rules:
        if r.retired_at is not None:
            continue
        if r.category_code is None:
            cat_score = 0
        elif r.category_code == category_code:
            cat_score = 2
        elif len(r.category_code) == 2 and category_code.startswith(r.category_code):
            cat_score = 1
        else:
            continue
        if r.area_id is None:
            area_score = 0
        elif r.area_id in area_levels:
            area_score = area_levels[r.area_id]
        else:
            continue
        if not _hour_matches(r, hour):
            continue
        time_score = 0 if r.hour_from is None else 1
        key = (area_score, cat_score, time_score, -r.precedence, r.id)
        if best is None or key > best:
            best, chosen = key, r
    if chosen is None:
        return None
    scope = {2: Msg("category {code}", code=category_code),
             1: Msg("major class {code}", code=chosen.category_code), 0: Msg("any category")}[best[1]]
    names = area_names or {}
    area = (Msg("the whole district") if chosen.area_id is None
            else names.get(chosen.area_id) or Msg("area #{id}", id=chosen.area_id))
    hours = (Msg(", hours {start:02d}–{end:02d}", start=chosen.hour_from, end=chosen.hour_to)
             if chosen.hour_from is not None else "")
    if chosen.note:
        why = Msg("rule #{rule} ({scope}, {area}{hours}): {note}", rule=chosen.id, scope=scope, area=area,
                  hours=hours, note=chosen.note)
    else:
        why = Msg("rule #{rule} ({scope}, {area}{hours})", rule=chosen.id, scope=scope, area=area, hours=hours)
    return Decision(chosen.id, chosen.main_department_id, tuple(json.loads(chosen.assist_department_ids)), why)
