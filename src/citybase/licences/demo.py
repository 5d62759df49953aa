"""The demo's licences: the catalogue's types, and licences issued to the demo city's persons and firms
(ID cards, household registers, marriage and birth certificates, insurance and social-security cards, business
and food-business licences), signed like any other and bulk-written (COPY on PostgreSQL).

Persons and firms are read through the registry's service; only this domain's tables are written."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.licences import service
from citybase.licences.identifiers import make_identifier
from citybase.registry import service as registry
from citybase.storage.db import bulk_insert

MAX_PERSONS = 20_000  # a district-sized demo issues to the first ones only, so it stays quick to load
MAX_ENTITIES = 10_000
COLUMNS = ("identifier", "type_id", "holder_kind", "person_id", "legal_entity_id", "holder_name", "holder_code",
           "fields", "issuer_department_id", "issued_on", "expires_on", "application_ref", "status", "revoked_at",
           "revoke_reason", "token", "key_id", "created_at")
ETHNICITIES = ["汉"] * 24 + ["回", "满", "蒙古", "朝鲜"]
ENTITY_KINDS = {"enterprise": "有限责任公司", "individual": "个体工商户", "cooperative": "农民专业合作社"}
Progress = Callable[[str, int, int], None]


def _pages(fetch: Callable[..., tuple[list[Any], int]], limit: int) -> Iterator[Any]:
    page = 1
    while True:
        rows, total = fetch(page=page, page_size=500)
        yield from rows
        if not rows or page * 500 >= min(total, limit):
            return
        page += 1


def seed_demo(engine: Engine, *, seed: int = 2026, today: date = date(2026, 11, 1),
              progress: Progress | None = None) -> dict[str, int]:
    """Seed the licence types and issue the demo city's licences (once: an already seeded city is left as it is);
    returns counts for the generator's report."""
    progress = progress or (lambda stage, done, total: None)
    rnd = random.Random(seed)
    # rows stay readable after the commit: they are only read, for the licences' content
    with Session(engine, expire_on_commit=False) as session, session.begin():
        added = service.seed_types(session=session)
        if not added:
            return {}
        types = {t.key: t for t in service.list_types(session=session)}
        depts = {d.id: d for d in registry.list_departments(session=session)}
        keys = service.signing_keys(session=session)
        persons = list(_pages(lambda **kw: registry.list_persons(session=session, **kw), MAX_PERSONS))[:MAX_PERSONS]
        entities = list(_pages(lambda **kw: registry.list_entities(session=session, **kw), MAX_ENTITIES))[:MAX_ENTITIES]
    now = utcnow()
    counts: dict[str, int] = {}

    def licence(key: str, holder: Any, fields: dict[str, str], issued: date) -> tuple:
        t = types[key]
        d = depts[t.issuer_department_id]
        person = t.holder_kind == "person"
        name, code = (holder.name, holder.id_number) if person else (holder.name, holder.uscc)
        ident = make_identifier(t.code, d.code, f"{issued:%Y}{rnd.getrandbits(48):012X}")
        expires = service.expiry_of(t, issued)
        token = keys.sign(service.content_of(identifier=ident, t=t, holder_kind=t.holder_kind, holder_name=name,
                                             holder_code=code, fields=fields, issuer_code=d.code, issuer_name=d.name,
                                             issued_on=issued, expires_on=expires))
        counts[key] = counts.get(key, 0) + 1
        return (ident, t.id, t.holder_kind, holder.id if person else None, None if person else holder.id, name, code,
                json.dumps(fields, ensure_ascii=False), d.id, issued, expires, None, "valid", None, None, token,
                keys.kid, now)

    def age(p: Any) -> int:
        b = p.birth_date
        return today.year - b.year - ((today.month, today.day) < (b.month, b.day))

    households: dict[str, list[Any]] = {}
    for p in persons:
        households.setdefault(p.household_no, []).append(p)

    def rows() -> Iterator[tuple]:
        sex = {"M": "男", "F": "女"}
        for i, p in enumerate(persons):
            a = age(p)
            home = households[p.household_no]
            born = p.birth_date.isoformat()
            if a >= 16:
                # most cards were issued within their 20 years; a few are past it (expired, to be renewed)
                back = rnd.randint(20 * 365 + 10, 21 * 365) if rnd.random() < 0.02 else rnd.randint(30, 19 * 365)
                issued = max(today - timedelta(days=back), p.birth_date + timedelta(days=16 * 365))
                yield licence("id_card", p, {"sex": sex[p.sex], "ethnicity": rnd.choice(ETHNICITIES),
                                             "birth_date": born, "address": p.registered_address}, issued)
                yield licence("social_security_card", p, {"card_no": f"M{rnd.randrange(10**8):08d}",
                                                          "issued_by": "上海市"},
                              today - timedelta(days=rnd.randint(30, 9 * 365)))
            yield licence("household_register", p, {
                "household_no": p.household_no, "household_kind": "家庭户", "address": p.registered_address,
                "relation": "户主" if home[0] is p else "家庭成员"}, max(p.birth_date, date(2000, 1, 1)))
            yield licence("medical_insurance", p, {"scheme": "城镇职工基本医疗保险" if 18 <= a < 60 else "城乡居民基本医疗保险",
                                                   "insured_since": max(p.birth_date, date(2001, 1, 1)).isoformat()},
                          max(p.birth_date, date(2001, 1, 1)))
            if a >= 60:
                retired = p.birth_date.replace(year=p.birth_date.year + 60, day=min(p.birth_date.day, 28))
                yield licence("retirement_certificate", p, {"retired_on": retired.isoformat(), "employer": "上海市某单位"},
                              retired)
            if a < 10:
                mother = next((q for q in home if q.sex == "F" and age(q) >= 20), None)
                father = next((q for q in home if q.sex == "M" and age(q) >= 22), None)
                yield licence("birth_certificate", p, {
                    "sex": sex[p.sex], "birth_date": born, "birth_place": "上海市徐汇区",
                    "mother_name": mother.name if mother else "—", "father_name": father.name if father else "—"},
                    p.birth_date + timedelta(days=3))
            if home[0] is p:  # one couple per household: its first adult man and woman
                man = next((q for q in home if q.sex == "M" and age(q) >= 22), None)
                woman = next((q for q in home if q.sex == "F" and age(q) >= 20), None)
                if man and woman and man is not woman:
                    on = max(man.birth_date.replace(year=man.birth_date.year + 22, day=min(man.birth_date.day, 28)),
                             woman.birth_date.replace(year=woman.birth_date.year + 20, day=min(woman.birth_date.day, 28)))
                    on = min(on + timedelta(days=rnd.randint(0, 3000)), today - timedelta(days=1))
                    for x, y in ((man, woman), (woman, man)):
                        yield licence("marriage_certificate", x, {"spouse_name": y.name, "spouse_id_number": y.id_number,
                                                                  "registered_on": on.isoformat()}, on)
            if i % 5000 == 0:
                progress("licences", i, len(persons) + len(entities))
        for j, e in enumerate(entities):
            if e.status != "active":
                continue
            if e.entity_type == "social_org":
                yield licence("social_org_certificate", e, {"legal_rep": e.legal_rep_name, "address": e.address,
                                                            "scope": e.industry},
                              today - timedelta(days=rnd.randint(30, 4 * 365)))
                continue
            if e.entity_type not in ENTITY_KINDS:
                continue
            yield licence("business_licence", e, {
                "entity_type": ENTITY_KINDS[e.entity_type], "legal_rep": e.legal_rep_name,
                "registered_capital": f"{e.registered_capital:g}万元", "established_on": e.established_on.isoformat(),
                "address": e.address, "scope": e.industry}, e.established_on)
            if e.industry_code == "H":
                issued = today - timedelta(days=rnd.randint(30, 6 * 365))  # some are past their five years
                yield licence("food_business_licence", e, {
                    "licence_no": f"JY{rnd.randrange(10**13):013d}", "operator_kind": "餐饮服务经营者",
                    "premises": e.address, "items": "热食类食品制售"}, issued)
                if rnd.random() < 0.3:
                    yield licence("public_health_licence", e, {"venue": e.name, "premises": e.address,
                                                               "items": "住宿场所"},
                                  today - timedelta(days=rnd.randint(30, 3 * 365)))
            if j % 5000 == 0:
                progress("licences", len(persons) + j, len(persons) + len(entities))
        progress("licences", len(persons) + len(entities), len(persons) + len(entities))

    n = bulk_insert(engine, "licences", COLUMNS, rows())
    return {"licence_types": added, "licences": n}
