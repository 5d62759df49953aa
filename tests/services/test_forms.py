"""The declared forms and what bundles make of them: validation in the reader's language, merged fields,
deduplicated materials, parallel stages and the critical path — and the shipped catalogue itself."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from citybase.core.i18n import set_lang
from citybase.services import forms
from citybase.services.forms import Member

CATALOGUE = json.loads(files("citybase.services").joinpath("data/catalogue.json").read_text(encoding="utf-8"))
ITEMS = {i["code"]: i for i in CATALOGUE["items"]}


def member(code: str, after=()):  # noqa: ANN001
    i = ITEMS[code]
    return Member(code=code, name=i["name"], department_id=hash(i["department"]) % 1000, form=i["form"],
                  materials=i["materials"], committed_days=i["committed_days"], statutory_days=i["statutory_days"],
                  max_visits=i["max_visits"], after=tuple(after))


def bundle(code: str) -> list[Member]:
    b = next(b for b in CATALOGUE["bundles"] if b["code"] == code)
    return [member(m["item"], m["after"]) for m in b["members"]]


def test_the_demo_catalogue_has_at_least_80_valid_items_of_many_departments():
    assert len(ITEMS) >= 80
    assert len({i["department"] for i in ITEMS.values()}) >= 15
    for i in ITEMS.values():
        assert forms.check_schema(i["form"]) == [], i["code"]
        assert forms.check_materials(i["materials"]) == [], i["code"]
        assert i["committed_days"] <= i["statutory_days"], i["code"]
        for m in i["materials"]:
            if m["source"]["kind"] == "item":
                assert m["source"]["item"] in ITEMS


def test_a_field_shared_by_items_is_declared_alike_everywhere():
    seen: dict[str, dict] = {}
    for i in ITEMS.values():
        for key, prop in i["form"]["properties"].items():
            assert seen.setdefault(key, prop) == prop, key


def test_the_newborn_bundle_asks_each_field_once_and_passes_results_between_items():
    ms = bundle("newborn")
    form = forms.merge_forms(ms)
    assert len(form["properties"]) < sum(len(m.form["properties"]) for m in ms)
    assert form["properties"]["child_name"]["x-items"] == ["XH-WJW-001", "XH-GA-001", "XH-YB-001", "XH-WJW-002",
                                                           "XH-RS-001"] or len(form["properties"]["child_name"]["x-items"]) == 5
    mats = forms.merge_materials(ms)
    keys = [m["key"] for m in mats]
    assert len(keys) == len(set(keys))
    birth = next(m for m in mats if m["key"] == "item:XH-WJW-001")
    assert birth["internal"] and len(birth["items"]) == 4


def test_the_promised_time_is_the_critical_path_and_independent_items_share_a_stage():
    ms = bundle("newborn")
    days, chain = forms.critical_path(ms)
    # 出生医学证明 3 → 户口 5 → 社保卡 5 is the longest chain
    assert (days, chain) == (13, ["XH-WJW-001", "XH-GA-001", "XH-RS-001"])
    groups = forms.parallel_groups(ms)
    assert groups[0] == ["XH-WJW-001"]
    assert set(groups[1]) == {"XH-GA-001", "XH-WJW-002", "XH-YB-002"}
    s = forms.savings(ms)
    assert s["days"]["bundle"] == 13 < s["days"]["one_by_one"] == sum(m.committed_days for m in ms)
    assert s["fields"]["bundle"] < s["fields"]["one_by_one"]
    assert s["materials"]["to_bring"] < s["materials"]["one_by_one"]


def test_a_cycle_or_an_outside_dependency_is_refused():
    a, b = member("XH-GA-001", ["XH-YB-001"]), member("XH-YB-001", ["XH-GA-001"])
    with pytest.raises(ValueError, match="cycle"):
        forms.critical_path([a, b])
    with pytest.raises(ValueError, match="not in the bundle"):
        forms.critical_path([member("XH-YB-001", ["XH-GA-001"])])


def test_bad_answers_get_messages_naming_the_field_in_chinese_by_default():
    schema = forms.merge_forms(bundle("newborn"))
    answers = {"child_sex": "X", "child_birth_date": "2026-13-40", "id_number": "310104199001011234",
               "bank_account": "12ab", "nonsense": 1}
    errors = {e["field"]: e for e in forms.validate(schema, answers, complete=True)}
    assert set(errors) >= {"child_sex", "child_birth_date", "id_number", "bank_account", "nonsense", "child_name"}
    assert errors["child_name"]["problem"] == "请填写新生儿姓名"
    assert errors["child_sex"]["where"] == "form.child_sex"
    assert "男" in errors["child_sex"]["problem"]
    token = set_lang("en")
    try:
        en = {e["field"]: e for e in forms.validate(schema, answers, complete=True)}
    finally:
        from citybase.core.i18n import _lang

        _lang.reset(token)
    assert en["child_name"]["problem"] == "新生儿姓名 is required"


def test_a_draft_may_be_partial_but_not_wrong():
    schema = forms.merge_forms(bundle("newborn"))
    assert forms.validate(schema, {"child_name": "王小明"}, complete=False) == []
    assert [e["field"] for e in forms.validate(schema, {"child_name": "王"}, complete=False)] == ["child_name"]


def test_a_schema_outside_the_supported_subset_is_refused():
    bad = {"type": "object", "properties": {"Name": {"type": "array"}, "x": {"type": "string", "oneOf": []}},
           "required": ["y"]}
    wheres = [w for w, _ in forms.check_schema(bad)]
    assert "form.properties.Name" in wheres and "form.properties.x" in wheres and "form.required" in wheres
