"""The declared forms and what a bundle makes of them — pure functions, no database.

A form is a JSON Schema (draft 2020-12) object whose properties each carry a Chinese ``title``; citybase
checks the subset a government form needs: ``type`` (string, integer, number, boolean), ``enum``,
``minLength``/``maxLength``, ``minimum``/``maximum``, ``pattern``, ``format: date``, ``required``, and two
extensions: ``x-check`` (``id_number`` GB 11643, ``uscc`` GB 32100, ``phone``) and ``x-prefill`` (the base
registry field that answers it: ``person.name`` …). Every refusal names the field path and is said in the
reader's language with the field's Chinese title."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from citybase.core.errors import InvalidIdentifier, InvalidInput
from citybase.core.i18n import Msg, render
from citybase.core.ids import validate_id_number, validate_uscc
from citybase.core.phones import check_phone

TYPES = ("string", "integer", "number", "boolean")
CHECKS = ("id_number", "uscc", "phone")
PREFILL = ("person.name", "person.id_number", "person.phone", "person.household_no", "person.address",
           "person.sex", "person.birth_date", "entity.name", "entity.uscc", "entity.address",
           "entity.legal_rep_name")
KEYWORDS = {"type", "title", "description", "enum", "minLength", "maxLength", "minimum", "maximum", "pattern",
            "format", "x-check", "x-prefill"}
SOURCES = ("applicant", "licence", "registry", "item")


def check_schema(schema: Any) -> list[tuple[str, Msg]]:
    """What is wrong with a declared form schema (empty when citybase can use it)."""
    bad: list[tuple[str, Msg]] = []
    if not isinstance(schema, dict) or schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        return [("form", Msg('the form must be a JSON Schema object with properties'))]
    for key, prop in schema["properties"].items():
        where = f"form.properties.{key}"
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key):
            bad.append((where, Msg('a field key must be lower-case letters, digits and _')))
        if not isinstance(prop, dict):
            bad.append((where, Msg('a field must be an object')))
            continue
        unknown = set(prop) - KEYWORDS
        if unknown:
            bad.append((where, Msg('unsupported keywords: {items}', items=", ".join(sorted(unknown)))))
        if prop.get("type") not in TYPES:
            bad.append((where, Msg('type must be one of: {items}', items=", ".join(TYPES))))
        if not isinstance(prop.get("title"), str) or not prop["title"].strip():
            bad.append((where, Msg('every field needs a title (its Chinese label)')))
        if "x-check" in prop and prop["x-check"] not in CHECKS:
            bad.append((where, Msg('x-check must be one of: {items}', items=", ".join(CHECKS))))
        if "x-prefill" in prop and prop["x-prefill"] not in PREFILL:
            bad.append((where, Msg('x-prefill must be one of: {items}', items=", ".join(PREFILL))))
        if "pattern" in prop:
            try:
                re.compile(prop["pattern"])
            except (re.error, TypeError):
                bad.append((where, Msg('pattern is not a regular expression')))
    for key in schema.get("required", []):
        if key not in schema["properties"]:
            bad.append(("form.required", Msg('required names an unknown field {key}', key=key)))
    return bad


def check_materials(materials: Any) -> list[tuple[str, Msg]]:
    """What is wrong with a declared list of materials (empty when it can be used)."""
    if not isinstance(materials, list):
        return [("materials", Msg('materials must be a list'))]
    bad: list[tuple[str, Msg]] = []
    for i, m in enumerate(materials):
        where = f"materials.{i}"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"].strip():
            bad.append((where, Msg('a material needs a name')))
            continue
        src = m.get("source")
        if not isinstance(src, dict) or src.get("kind") not in SOURCES:
            bad.append((where, Msg('source.kind must be one of: {items}', items=", ".join(SOURCES))))
            continue
        need = {"licence": "type", "registry": "field", "item": "item"}.get(src["kind"])
        if need and not isinstance(src.get(need), str):
            bad.append((where, Msg('a source of kind {kind} names its {key}', kind=src["kind"], key=need)))
        if src["kind"] == "registry" and src.get("field") not in PREFILL:
            bad.append((where, Msg('x-prefill must be one of: {items}', items=", ".join(PREFILL))))
    return bad


def _problem(field: str, title: str, msg: Msg, value: Any) -> dict[str, Any]:
    shown = value if isinstance(value, int | float | bool) or value is None else str(value)[:200]
    return {"where": f"form.{field}", "field": field, "label": title, "problem": render(msg), "input": shown}


def validate(schema: Mapping[str, Any], answers: Mapping[str, Any], *, complete: bool) -> list[dict[str, Any]]:
    """Each field of ``answers`` the schema refuses, as {where, field, label, problem, input}; with
    ``complete`` the required fields must be there too (a draft may be partial)."""
    props = schema.get("properties", {})
    errors: list[dict[str, Any]] = []
    for key in answers:
        if key not in props:
            errors.append(_problem(key, key, Msg('the form has no field {key}', key=key), answers[key]))
    for key, prop in props.items():
        title = prop.get("title", key)
        value = answers.get(key)
        if value is None or value == "":
            if complete and key in schema.get("required", []):
                errors.append(_problem(key, title, Msg('{label} is required', label=title), value))
            continue
        msg = _check_value(prop, title, value)
        if msg is not None:
            errors.append(_problem(key, title, msg, value))
    return errors


def _check_value(prop: Mapping[str, Any], title: str, value: Any) -> Msg | None:
    t = prop.get("type")
    if t == "string" and not isinstance(value, str):
        return Msg('{label} must be text', label=title)
    if t == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return Msg('{label} must be a whole number', label=title)
    if t == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return Msg('{label} must be a number', label=title)
    if t == "boolean" and not isinstance(value, bool):
        return Msg('{label} must be yes or no', label=title)
    if "enum" in prop and value not in prop["enum"]:
        return Msg('{label} must be one of: {items}', label=title, items="、".join(map(str, prop["enum"])))
    if isinstance(value, str):
        if len(value) < prop.get("minLength", 0):
            return Msg('{label} needs at least {n} characters', label=title, n=prop["minLength"])
        if "maxLength" in prop and len(value) > prop["maxLength"]:
            return Msg('{label} allows at most {n} characters', label=title, n=prop["maxLength"])
        if "pattern" in prop and not re.search(prop["pattern"], value):
            return Msg('{label} is not in the expected format', label=title)
        if prop.get("format") == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                return Msg('{label} must be a date like 2026-03-01', label=title)
        check = prop.get("x-check")
        try:
            if check == "id_number":
                validate_id_number(value)
            elif check == "uscc":
                validate_uscc(value)
            elif check == "phone":
                check_phone(value)
        except (InvalidIdentifier, InvalidInput) as exc:
            return Msg('{label}: {problem}', label=title, problem=render(exc.detail))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in prop and value < prop["minimum"]:
            return Msg('{label} must be at least {n}', label=title, n=prop["minimum"])
        if "maximum" in prop and value > prop["maximum"]:
            return Msg('{label} must be at most {n}', label=title, n=prop["maximum"])
    return None


@dataclass(frozen=True)
class Member:
    """An item as a bundle (or a single application) sees it."""

    code: str
    name: str
    department_id: int
    form: Mapping[str, Any]
    materials: Sequence[Mapping[str, Any]]
    committed_days: int
    statutory_days: int
    max_visits: int
    after: tuple[str, ...] = ()


def merge_forms(members: Sequence[Member]) -> dict[str, Any]:
    """One form for several items: a field several items need is asked once (same key, first declaration
    kept), required where any item requires it; each field says which items use it (``x-items``)."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for m in members:
        for key, prop in m.form.get("properties", {}).items():
            if key not in props:
                props[key] = {**prop, "x-items": [m.code]}
            else:
                props[key]["x-items"].append(m.code)
        for key in m.form.get("required", []):
            if key not in required:
                required.append(key)
    return {"type": "object", "properties": props, "required": required}


def material_key(m: Mapping[str, Any]) -> str:
    """Two materials are the same evidence when they come from the same source (the same licence type, the
    same registry field, the same item's result) or, brought by the applicant, bear the same name."""
    src = m["source"]
    kind = src["kind"]
    if kind == "licence":
        return f"licence:{src['type']}"
    if kind == "registry":
        return f"registry:{src['field']}"
    if kind == "item":
        return f"item:{src['item']}"
    return f"applicant:{m['name']}"


def merge_materials(members: Sequence[Member]) -> list[dict[str, Any]]:
    """The bundle's materials, each once, with the items that need it; the result of an item inside the
    bundle is passed on by the platform, never asked for."""
    inside = {m.code for m in members}
    out: dict[str, dict[str, Any]] = {}
    for m in members:
        for mat in m.materials:
            key = material_key(mat)
            if key not in out:
                out[key] = {**mat, "key": key, "items": [m.code],
                            "internal": mat["source"]["kind"] == "item" and mat["source"]["item"] in inside}
            else:
                out[key]["items"].append(m.code)
                out[key]["required"] = out[key]["required"] or mat.get("required", True)
    return list(out.values())


class DependencyError(ValueError):
    """A bundle's dependencies name an item outside it (``missing``: (member, dependency)) or form a cycle
    (``cycle``: the codes around it, the first repeated at the end)."""

    def __init__(self, text: str, *, missing: tuple[str, str] | None = None, cycle: tuple[str, ...] = ()) -> None:
        super().__init__(text)
        self.missing = missing
        self.cycle = cycle


def check_dependencies(members: Sequence[Member]) -> list[str]:
    """The members in an order where each comes after what it depends on; DependencyError (a ValueError) on a
    cycle or an unknown dependency."""
    by = {m.code: m for m in members}
    for m in members:
        for d in m.after:
            if d not in by:
                raise DependencyError(f"{m.code} depends on {d}, which is not in the bundle", missing=(m.code, d))
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(code: str, path: tuple[str, ...]) -> None:
        if state.get(code) == 2:
            return
        if state.get(code) == 1:
            around = path[path.index(code):] + (code,)
            raise DependencyError("the bundle's dependencies form a cycle: " + " -> ".join(around), cycle=around)
        state[code] = 1
        for d in by[code].after:
            visit(d, path + (code,))
        state[code] = 2
        order.append(code)

    for m in members:
        visit(m.code, ())
    return order


def critical_path(members: Sequence[Member]) -> tuple[int, list[str]]:
    """The bundle's promised time: the longest chain of committed working days through its dependencies,
    and that chain's items (independent items run in parallel)."""
    by = {m.code: m for m in members}
    finish: dict[str, int] = {}
    via: dict[str, str | None] = {}
    for code in check_dependencies(members):
        m = by[code]
        prev = max(m.after, key=lambda d: finish[d], default=None)
        finish[code] = (finish[prev] if prev else 0) + m.committed_days
        via[code] = prev
    if not finish:
        return 0, []
    end = max(finish, key=lambda c: finish[c])
    chain = [end]
    while via[chain[-1]]:
        chain.append(via[chain[-1]])  # type: ignore[arg-type]
    return finish[end], list(reversed(chain))


def parallel_groups(members: Sequence[Member]) -> list[list[str]]:
    """The members by stage: the items of one stage depend only on earlier stages and run in parallel."""
    by = {m.code: m for m in members}
    level: dict[str, int] = {}
    for code in check_dependencies(members):
        level[code] = 1 + max((level[d] for d in by[code].after), default=-1)
    groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for m in members:
        groups[level[m.code]].append(m.code)
    return groups


def savings(members: Sequence[Member]) -> dict[str, Any]:
    """What the bundle saves the applicant against doing its items one by one: fields, materials, visits,
    days (the prefilled fields and the materials a licence or registry proves are counted separately)."""
    form = merge_forms(members)
    mats = merge_materials(members)
    fields_each = sum(len(m.form.get("properties", {})) for m in members)
    prefilled = [k for k, p in form["properties"].items() if "x-prefill" in p]
    mats_each = sum(len(m.materials) for m in members)
    provided = [m for m in mats if m["source"]["kind"] in ("licence", "registry")]
    internal = [m for m in mats if m["internal"]]
    to_bring = [m for m in mats if m["source"]["kind"] in ("applicant",)
                or (m["source"]["kind"] == "item" and not m["internal"])]
    days, chain = critical_path(members)
    days_each = sum(m.committed_days for m in members)
    visits_each = sum(m.max_visits for m in members)
    visits = max((m.max_visits for m in members), default=0)
    return {
        "fields": {"one_by_one": fields_each, "bundle": len(form["properties"]), "prefilled": len(prefilled),
                   "to_fill": len(form["properties"]) - len(prefilled)},
        "materials": {"one_by_one": mats_each, "bundle": len(mats), "from_licences_or_registries": len(provided),
                      "passed_between_items": len(internal), "to_bring": len(to_bring)},
        "visits": {"one_by_one": visits_each, "bundle": visits},
        "days": {"one_by_one": days_each, "bundle": days, "critical_path": chain},
        "statutory_days": {"one_by_one": sum(m.statutory_days for m in members)},
    }
