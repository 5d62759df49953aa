"""NGSI-LD payloads ↔ the stored form of an entity.

Stored form (what the repository keeps, what ``query.matches`` reads)::

    {"id": URI, "type": [type IRI, ...], "scope": [...]?, "createdAt": ..., "modifiedAt": ...,
     "attrs": {attribute IRI: [instance, ...]}}

An instance keeps the core members under their short names (``type``, ``value``, ``object``, ``languageMap``,
``vocab`` (an IRI), ``json``, ``valueList``, ``objectList``, ``datasetId``, ``observedAt``, ``unitCode``,
``createdAt``, ``modifiedAt``) and its sub-attributes under their IRIs (one instance each). Values are kept as
sent: a compound value is opaque JSON, as NGSI-LD clients expect it back."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from shapely.geometry import shape

from citybase.twin.errors import BadRequestData, InvalidRequest
from citybase.twin.ldcontext import NGSI, Resolver

ATTRIBUTE_TYPES = ("Property", "Relationship", "GeoProperty", "LanguageProperty", "VocabProperty", "JsonProperty",
                   "ListProperty", "ListRelationship")
VALUE_KEY = {"Property": "value", "GeoProperty": "value", "Relationship": "object", "LanguageProperty": "languageMap",
             "VocabProperty": "vocab", "JsonProperty": "json", "ListProperty": "valueList",
             "ListRelationship": "objectList"}
CORE_MEMBERS = frozenset({"type", "value", "object", "languageMap", "vocab", "json", "valueList", "objectList",
                          "datasetId", "observedAt", "unitCode", "createdAt", "modifiedAt", "instanceId", "objectType",
                          "lang", "deletedAt", "previousValue", "previousObject", "previousLanguageMap",
                          "previousVocab", "previousJson", "previousValueList", "previousObjectList",
                          "expiresAt"})
SYSTEM = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})
GEO_IRIS = frozenset({NGSI + "location", NGSI + "observationSpace", NGSI + "operationSpace"})
RESERVED_ENTITY = frozenset({"@context", "id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"})
GEOMETRIES = ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon")
# characters NGSI-LD forbids in names (CIM 009 §4.6.2): < > " ' = ; ( ) and controls
FORBIDDEN = re.compile(r"[<>\"'=;()\x00-\x1f\x7f]")
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def now_iso() -> str:
    """The current time as NGSI-LD writes it: UTC, milliseconds, ``Z``."""
    return iso(datetime.now(UTC))


def iso(t: datetime) -> str:
    """A stored time as NGSI-LD writes it (SQLite gives times back without a zone: they are UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    if t.microsecond < 1000:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str, what: str) -> datetime:
    """A DateTime parameter or member (ISO 8601 with a zone; no zone means UTC)."""
    if not isinstance(text, str) or not DATETIME.match(text.strip()):
        raise BadRequestData(f"{what} must be an ISO 8601 date-time such as 2026-12-01T08:00:00Z, not {str(text)[:40]!r}")
    s = text.strip().replace("Z", "+00:00")
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise BadRequestData(f"{what} {text[:40]!r} is not a valid date-time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# invisible characters that make two ids look the same: format (Cf), fillers, blank braille, variation selectors
INVISIBLE = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800})


def _invisible(value: str) -> bool:
    for ch in value:
        o = ord(ch)
        if o < 0x80:
            continue
        if (o in INVISIBLE or unicodedata.category(ch) in ("Cf", "Cc", "Cs", "Co", "Zs", "Zl", "Zp")
                or 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF or (o & 0xFFFE) == 0xFFFE or 0xFDD0 <= o <= 0xFDEF):
            return True
    return False


def check_uri(value: Any, what: str) -> str:
    if (not isinstance(value, str) or not URI.match(value) or len(value) > 2048 or FORBIDDEN.search(value)
            or _invisible(value)):
        raise BadRequestData(f"{what} must be a URI (e.g. urn:ngsi-ld:Building:B1) without spaces or invisible "
                             f"characters, not {str(value)[:80]!r}")
    return value


def check_name(name: Any, what: str = "attribute name") -> str:
    if not isinstance(name, str) or not name or len(name) > 512 or FORBIDDEN.search(name) or name in (".", ".."):
        raise BadRequestData(f"{what} {str(name)[:80]!r} is empty or holds a forbidden character (< > \" ' = ; ( ))")
    return name


def expand_types(value: Any, r: Resolver) -> list[str]:
    """The entity's type(s) as IRIs (one string or a list of strings)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(t, str) and t for t in items):
        raise BadRequestData("type must be a name or a list of names")
    out: list[str] = []
    for t in items:
        iri = r.expand(check_name(t, "type"))
        if iri.startswith("@") or ":" not in iri:
            raise BadRequestData(f"type {t!r} is a JSON-LD keyword or no IRI in the @context, not an entity type")
        if iri not in out:
            out.append(iri)
    return out


def _finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequestData(f"{where}: NaN and infinities are not JSON numbers")
    if isinstance(value, dict):
        for v in value.values():
            _finite(v, where)
    elif isinstance(value, list):
        for v in value:
            _finite(v, where)


def _infer_type(raw: dict[str, Any]) -> str | None:
    for t, key in VALUE_KEY.items():
        if t in ("GeoProperty",):
            continue
        if key in raw:
            return t
    return None


def _geometry(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in GEOMETRIES or "coordinates" not in value:
        raise BadRequestData(f"{where}: a GeoProperty's value must be a GeoJSON geometry "
                             f"({', '.join(GEOMETRIES)}) with coordinates")
    try:
        geom = shape(value)
        if geom.is_empty:
            raise ValueError("empty")
    except Exception:  # noqa: BLE001 - shapely raises many kinds for bad coordinates
        raise BadRequestData(f"{where}: the GeoJSON {value['type']} has invalid coordinates") from None
    return value


def is_geojson(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in GEOMETRIES and "coordinates" in value


def expand_instance(raw: Any, iri: str, r: Resolver, now: str, *, concise_ok: bool = True,
                    sub: bool = False) -> dict[str, Any]:
    """One attribute instance (normalized or concise) in stored form, with ``createdAt``/``modifiedAt`` set."""
    where = f"attribute {r.compact(iri)}"
    if not isinstance(raw, dict) or ("type" not in raw and _infer_type(raw) is None):
        if not concise_ok:
            raise BadRequestData(f"{where} must be an object with a type (Property, Relationship, …)")
        if is_geojson(raw) or (iri in GEO_IRIS and isinstance(raw, dict)):
            raw = {"type": "GeoProperty", "value": raw}
        else:
            raw = {"type": "Property", "value": raw}
    kind = raw.get("type")
    if kind is None:
        kind = _infer_type(raw)
        if kind == "Property" and (iri in GEO_IRIS or is_geojson(raw.get("value"))):
            kind = "GeoProperty"
    if kind not in ATTRIBUTE_TYPES:
        raise BadRequestData(f"{where}: type must be one of {', '.join(ATTRIBUTE_TYPES)}, not {str(kind)[:40]!r}")
    key = VALUE_KEY[kind]
    if key not in raw or raw[key] is None:
        raise BadRequestData(f"{where}: a {kind} needs a non-null {key!r}")
    out: dict[str, Any] = {"type": kind}
    val = raw[key]
    _finite(val, where)
    if kind == "Relationship":
        objs = val if isinstance(val, list) else [val]
        for o in objs:
            check_uri(o, f"{where}: object")
        out["object"] = val
    elif kind == "GeoProperty":
        out["value"] = _geometry(val, where)
    elif kind == "LanguageProperty":
        if not isinstance(val, dict) or not val or not all(isinstance(k, str) and isinstance(v, str | list)
                                                           for k, v in val.items()):
            raise BadRequestData(f"{where}: languageMap must map language tags to strings")
        out["languageMap"] = val
    elif kind == "VocabProperty":
        vals = val if isinstance(val, list) else [val]
        if not all(isinstance(v, str) and v for v in vals):
            raise BadRequestData(f"{where}: vocab must be a name or a list of names")
        exp = [r.expand(v) for v in vals]
        out["vocab"] = exp if isinstance(val, list) else exp[0]
    elif kind == "ListProperty":
        if not isinstance(val, list):
            raise BadRequestData(f"{where}: valueList must be a list")
        out["valueList"] = val
    elif kind == "ListRelationship":
        items = val if isinstance(val, list) else None
        if items is None:
            raise BadRequestData(f"{where}: objectList must be a list")
        out["objectList"] = [check_uri(o.get("object") if isinstance(o, dict) else o, f"{where}: objectList item")
                             for o in items]
    else:
        out[key] = val
    if "datasetId" in raw and raw["datasetId"] is not None:
        out["datasetId"] = check_uri(raw["datasetId"], f"{where}: datasetId")
    if "observedAt" in raw:
        parse_time(raw["observedAt"], f"{where}: observedAt")
        out["observedAt"] = raw["observedAt"]
    if "expiresAt" in raw and not sub:  # a transient instance (§4.22): not served once this time has passed
        out["expiresAt"] = iso(parse_time(raw["expiresAt"], f"{where}: expiresAt"))
    if "unitCode" in raw:
        if not isinstance(raw["unitCode"], str):
            raise BadRequestData(f"{where}: unitCode must be a string (UN/CEFACT common code)")
        out["unitCode"] = raw["unitCode"]
    if kind == "Relationship" and "objectType" in raw:
        ot = raw["objectType"]
        out["objectType"] = [r.expand(t) for t in ot] if isinstance(ot, list) else r.expand(str(ot))
    for k, v in raw.items():
        if k in CORE_MEMBERS or k == "@context":
            continue
        sub_iri = r.expand(check_name(k))
        out[sub_iri] = expand_instance(v, sub_iri, r, now, concise_ok=concise_ok, sub=True)
    out["createdAt"] = out["modifiedAt"] = now
    return out


def expand_attribute(raw: Any, iri: str, r: Resolver, now: str) -> list[dict[str, Any]]:
    """An attribute's instances (a list in the payload means several datasetIds); one per datasetId."""
    items = raw if isinstance(raw, list) and raw and all(isinstance(i, dict) for i in raw) and \
        any("type" in i or _infer_type(i) for i in raw) else [raw]
    out: list[dict[str, Any]] = []
    seen: set[str | None] = set()
    for item in items:
        inst = expand_instance(item, iri, r, now)
        ds = inst.get("datasetId")
        if ds in seen:
            raise BadRequestData(f"attribute {r.compact(iri)} has two instances with datasetId {ds or '(default)'}")
        seen.add(ds)
        out.append(inst)
    return out


def expand_attributes(body: dict[str, Any], r: Resolver, now: str) -> dict[str, list[dict[str, Any]]]:
    """Every attribute of a payload (entity fragment), by IRI."""
    attrs: dict[str, list[dict[str, Any]]] = {}
    for name, raw in body.items():
        if name in RESERVED_ENTITY:
            continue
        iri = r.expand(check_name(name))
        if iri.startswith("@"):
            raise BadRequestData(f"attribute name {name!r} is a JSON-LD keyword in the @context")
        if iri in attrs:
            raise BadRequestData(f"attribute {name} is given twice (as two names for the same IRI)")
        attrs[iri] = expand_attribute(raw, iri, r, now)
    return attrs


def expand_scope(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    for s in items:
        if not isinstance(s, str) or not re.match(r"^/[^\s/#+]+(/[^\s/#+]+)*$", s):
            raise BadRequestData(f"scope {str(s)[:60]!r} must be a path like /Shanghai/Xuhui")
    return list(items)


def expand_entity(body: Any, r: Resolver, now: str, *, need_type: bool = True) -> dict[str, Any]:
    """A whole entity payload in stored form."""
    if not isinstance(body, dict) or not body:
        raise InvalidRequest("the body must be a JSON object (an NGSI-LD entity), not "
                             + ("an empty one" if isinstance(body, dict) else type(body).__name__))
    if "id" not in body:
        raise BadRequestData("the entity has no id")
    entity: dict[str, Any] = {"id": check_uri(body["id"], "id")}
    if "type" in body:
        entity["type"] = expand_types(body["type"], r)
    elif need_type:
        raise BadRequestData("the entity has no type")
    scope = expand_scope(body.get("scope"))
    if scope is not None:
        entity["scope"] = scope
    entity["attrs"] = expand_attributes(body, r, now)
    entity["createdAt"] = entity["modifiedAt"] = now
    return entity


# ---------------------------------------------------------------------------------------------- answers


def _pick_lang(lmap: dict[str, Any], lang: str) -> tuple[Any, str | None]:
    """The value of a languageMap for a ``lang`` parameter (``en``, ``zh,en;q=0.8``, ``*``)."""
    wanted = [p.split(";")[0].strip() for p in lang.split(",") if p.strip()]
    for w in wanted:
        if w == "*":
            break
        if w in lmap:
            return lmap[w], w
    if "@none" in lmap:
        return lmap["@none"], "@none"
    for k, v in lmap.items():
        return v, k
    return None, None


def compact_instance(inst: dict[str, Any], r: Resolver, *, fmt: str, sys_attrs: bool, lang: str | None) -> Any:
    """One instance in the caller's context: ``normalized``, ``concise`` or ``keyValues`` (``simplified``)."""
    kind = inst["type"]
    key = VALUE_KEY[kind]
    if kind == "VocabProperty":
        val = inst["vocab"]
        main: Any = [r.compact(v) for v in val] if isinstance(val, list) else r.compact(val)
    else:
        main = inst[key]
    if kind == "LanguageProperty" and lang is not None:
        picked, tag = _pick_lang(main, lang)
        if fmt == "keyValues":
            return picked
        out: dict[str, Any] = {"type": "Property", "value": picked}
        if tag and tag != "@none":
            out["lang"] = tag
        if fmt == "concise":
            out.pop("type")
    elif fmt == "keyValues":
        if kind == "LanguageProperty":
            return {"languageMap": main}
        if kind == "VocabProperty":
            return {"vocab": main}
        if kind == "JsonProperty":
            return {"json": main}
        if kind == "ListRelationship":
            return {"objectList": [{"object": o} for o in main]}
        return main
    else:
        out = {"type": kind, key: main} if kind != "ListRelationship" else {
            "type": kind, "objectList": [{"object": o} for o in main]}
    for k in ("datasetId", "observedAt", "unitCode", "expiresAt"):
        if k in inst:
            out[k] = inst[k]
    if "objectType" in inst:
        ot = inst["objectType"]
        out["objectType"] = [r.compact(t) for t in ot] if isinstance(ot, list) else r.compact(ot)
    if sys_attrs:
        for k in ("createdAt", "modifiedAt"):
            if k in inst:
                out[k] = inst[k]
    for k, v in inst.items():
        if k not in CORE_MEMBERS and isinstance(v, dict):
            out[r.compact(k)] = compact_instance(v, r, fmt="normalized" if fmt == "concise" else fmt,
                                                 sys_attrs=sys_attrs, lang=lang) if fmt != "concise" else \
                compact_instance(v, r, fmt="concise", sys_attrs=sys_attrs, lang=lang)
    if fmt == "concise":
        out.pop("type", None) if kind in ("Property", "Relationship", "LanguageProperty", "VocabProperty",
                                          "JsonProperty", "ListProperty", "ListRelationship") else None
        if kind == "GeoProperty":
            out.pop("type", None)
        if list(out) == ["value"] and not isinstance(out["value"], dict):
            return out["value"]
        if list(out) == ["value"] and kind == "GeoProperty":
            return out["value"]
    return out


def _expired(inst: dict[str, Any], now: datetime) -> bool:
    at = inst.get("expiresAt")
    return isinstance(at, str) and parse_time(at, "expiresAt") <= now


def compact_entity(entity: dict[str, Any], r: Resolver, *, fmt: str = "normalized", sys_attrs: bool = False,
                   attrs: Iterable[str] | None = None, lang: str | None = None, with_context: bool = False,
                   pick: set[str] | None = None, omit: set[str] | None = None) -> dict[str, Any]:
    """An entity as the caller sees it: its names compacted in the caller's context; ``attrs`` (IRIs) keeps
    only those attributes; ``pick``/``omit`` (compacted names, id and type included) project the result."""
    out: dict[str, Any] = {"id": entity["id"]}
    types = [r.compact(t) for t in entity.get("type", [])]
    out["type"] = types[0] if len(types) == 1 else types
    if entity.get("scope"):
        sc = entity["scope"]
        out["scope"] = sc[0] if len(sc) == 1 else sc
    if sys_attrs:
        out["createdAt"] = entity.get("createdAt")
        out["modifiedAt"] = entity.get("modifiedAt")
    wanted = set(attrs) if attrs is not None else None
    now = None
    for iri, instances in entity.get("attrs", {}).items():
        if wanted is not None and iri not in wanted:
            continue
        if any("expiresAt" in i for i in instances):  # transient instances whose time is up are not there
            now = now or datetime.now(UTC)
            instances = [i for i in instances if not _expired(i, now)]
        shown = [compact_instance(i, r, fmt=fmt, sys_attrs=sys_attrs, lang=lang) for i in instances]
        if not shown:
            continue
        if fmt == "keyValues" and len(shown) > 1:
            # several datasets (§4.5.4): {"dataset": {datasetId or @none: value}}
            out[r.compact(iri)] = {"dataset": {i.get("datasetId", "@none"): v
                                               for v, i in zip(shown, instances, strict=True)}}
        else:
            out[r.compact(iri)] = shown[0] if len(shown) == 1 else shown
    if pick:
        out = {k: v for k, v in out.items() if k in pick}
    if omit:
        out = {k: v for k, v in out.items() if k not in omit}
    if with_context:
        out["@context"] = r.context if r.context is not None else [r.link]
    return out


def numeric(value: Any) -> float | None:
    """The number a history row keeps for aggregation (booleans and non-numbers: None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


# ------------------------------------------------------------------------------------------ joins (§4.5.23)


def links(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(attribute IRI, id) for every entity the entity's Relationships point at."""
    out = []
    for iri, instances in doc["attrs"].items():
        for inst in instances:
            if inst.get("type") == "Relationship":
                objs = inst.get("object")
                out.extend((iri, o) for o in (objs if isinstance(objs, list) else [objs]) if isinstance(o, str))
            elif inst.get("type") == "ListRelationship":
                out.extend((iri, o) for o in inst.get("objectList", []) if isinstance(o, str))
    return out


def load_linked(docs: list[dict[str, Any]], depth: int,
                fetch: Callable[[list[str]], dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``docs`` and the entities they link to, ``depth`` levels deep, by id; each level fetched at once."""
    known = {d["id"]: d for d in docs}
    level = list(docs)
    for _ in range(depth):
        targets = [t for d in level for _, t in links(d) if t not in known]
        if not targets:
            break
        found = fetch(list(dict.fromkeys(targets)))
        known.update(found)
        level = list(found.values())
    return known


def with_linked(value: Any, i: int, linked: dict[str, Any], fmt: str) -> Any:
    """An attribute as shown (``value``), its ``i``-th Relationship instance carrying the linked entity (an
    ``entity`` member; keyValues: the entity in place of the attribute)."""
    if fmt == "keyValues":
        return linked
    if isinstance(value, list):
        value = [dict(v) for v in value]
        value[i]["entity"] = linked
        return value
    if isinstance(value, dict):
        return {**value, "entity": linked}
    return value
