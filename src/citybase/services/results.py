"""What an approval issues: the fields of the electronic licence an item's result is, read from the application's
form (pure functions). The licence is issued by ``citybase.licences`` to the applicant when the type's holder is
of the applicant's kind (a 营业执照 from 开办企业 filed by a person waits for the firm to be in the 法人库)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

Answers = Mapping[str, Any]


def _v(a: Answers, *keys: str, default: str = "—") -> str:
    for k in keys:
        if a.get(k) not in (None, ""):
            return str(a[k])
    return default


FIELDS: dict[str, Callable[[Answers, str], dict[str, str]]] = {
    "birth_certificate": lambda a, code: {
        "sex": _v(a, "child_sex"), "birth_date": _v(a, "child_birth_date"), "birth_place": _v(a, "birth_hospital"),
        "mother_name": _v(a, "mother_name"), "father_name": _v(a, "father_name")},
    "household_register": lambda a, code: {
        "household_no": _v(a, "household_no"), "household_kind": "家庭户", "address": _v(a, "address"),
        "relation": "户内成员"},
    "business_licence": lambda a, code: {
        "entity_type": "有限责任公司", "legal_rep": _v(a, "legal_rep", "applicant_name"),
        "registered_capital": f"{_v(a, 'registered_capital')}万元", "established_on": date.today().isoformat(),
        "address": _v(a, "entity_address"), "scope": _v(a, "business_scope")},
    "food_business_licence": lambda a, code: {
        "licence_no": f"JY{code[-10:]}", "operator_kind": "餐饮服务经营者", "premises": _v(a, "shop_address"),
        "items": "热食类食品制售"},
    "retirement_certificate": lambda a, code: {"retired_on": _v(a, "retire_date"), "employer": _v(a, "employer")},
}


def licence_fields(licence_type: str, answers: Answers, application_code: str) -> dict[str, str] | None:
    """The fields of a licence of ``licence_type`` for an application's answers; None for a type not mapped."""
    make = FIELDS.get(licence_type)
    return make(answers, application_code) if make else None
