"""NGSI-LD Subscription payloads (CIM 009 v1.8 §5.2.12) ↔ the stored form of a subscription.

Stored form (``TwinSubscription.spec``), every name expanded with the @context of the request that wrote it::

    {"id": URI, "type": "Subscription", "subscriptionName"?, "description"?,
     "entities"?: [{"type": type expression of IRIs, "id"?: URI, "idPattern"?: regex}],
     "watchedAttributes"?: [IRI], "notificationTrigger": [trigger, ...],
     "q"?: {"text": q as sent, "context": the @context its names are in}, "scopeQ"?: text,
     "geoQ"?: {"geometry", "coordinates", "georel", "geoproperty": IRI},
     "timeInterval"?: s, "throttling"?: s, "expiresAt"?: ISO, "isActive": bool, "lang"?: text,
     "notification": {"attributes"?: [IRI], "format": normalized|keyValues|concise, "showChanges": bool,
                      "sysAttrs": bool, "endpoint": {"uri", "accept", "receiverInfo"?, "notifierInfo"?}}}

``q`` keeps its text and its @context (its grammar mixes names with paths and compound keys, so it is parsed
again where it is used); type expressions keep their structure with IRIs in place of names. Every check raises
an NGSI-LD BadRequestData naming the member, never a 500."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from citybase.twin import geoquery
from citybase.twin import query as ql
from citybase.twin.errors import BadRequestData
from citybase.twin.ldcontext import Resolver
from citybase.twin.representation import check_name, check_uri, iso, parse_time

TRIGGERS = ("entityCreated", "entityUpdated", "entityDeleted", "attributeCreated", "attributeUpdated",
            "attributeDeleted")
DEFAULT_TRIGGERS = ["attributeCreated", "attributeUpdated"]  # §5.2.12: when notificationTrigger is absent
FORMATS = {"normalized": "normalized", "concise": "concise", "keyValues": "keyValues", "simplified": "keyValues"}
ACCEPTS = ("application/json", "application/ld+json")
SCHEMES = ("http", "https", "mqtt", "mqtts")
TOP = frozenset({"@context", "id", "type", "subscriptionName", "description", "entities", "watchedAttributes",
                 "notificationTrigger", "q", "geoQ", "scopeQ", "timeInterval", "throttling", "expiresAt",
                 "isActive", "notification", "lang", "jsonldContext", "datasetId"})
READ_ONLY = frozenset({"status", "createdAt", "modifiedAt"})  # answered by the broker; ignored when sent back
NOTIFICATION = frozenset({"attributes", "format", "showChanges", "sysAttrs", "endpoint", "join", "joinLevel", "pick",
                          "omit"})
JOINS = ("flat", "inline", "@none")
MEMBERS = ("id", "type", "scope")  # entity members pick/omit may name besides attributes
NOTIFICATION_READ_ONLY = frozenset({"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess",
                                    "lastFailure"})
ENDPOINT = frozenset({"uri", "accept", "receiverInfo", "notifierInfo"})
TOKEN = re.compile(r"[^,;|()\s]+")
MAX_SECONDS = 10 * 365 * 86400  # a timeInterval or throttling longer than ten years is a mistake


def _text(value: Any, what: str, limit: int = 1024) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequestData(f"{what} must be a non-empty string of at most {limit} characters")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_SECONDS:
        raise BadRequestData(f"{what} must be a positive number of seconds (at most ten years), not {str(value)[:40]}")
    return value  # as given: 5 stays 5 when read back


def _names(value: Any, what: str, r: Resolver) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 1000:
        raise BadRequestData(f"{what} must be a non-empty list of attribute names")
    out: list[str] = []
    for name in value:
        iri = r.expand(check_name(name, f"{what}: name"))
        if iri not in out:
            out.append(iri)
    return out


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequestData(f"{what} must be true or false")
    return value


def _type_expression(text: Any, r: Resolver) -> str:
    """A type selection (§4.17) with its names expanded in place (checked by parsing it)."""
    text = _text(text, "entities: type")
    try:
        ql.parse_type_query(text, r.expand)
    except ValueError as exc:
        raise BadRequestData(f"entities: type: {exc}") from None
    return TOKEN.sub(lambda m: r.expand(check_name(m.group(), "entities: type")), text)


def compact_types(expression: str, r: Resolver) -> str:
    """A stored type expression in the caller's names."""
    return TOKEN.sub(lambda m: r.compact(m.group()), expression)


def _entities(value: Any, r: Resolver) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value or len(value) > 1000:
        raise BadRequestData("entities must be a non-empty list of {type, id, idPattern}")
    out = []
    for sel in value:
        if not isinstance(sel, dict) or "type" not in sel:
            raise BadRequestData("every member of entities must be an object with a type (and an id or idPattern)")
        unknown = set(sel) - {"type", "id", "idPattern"}
        if unknown:
            raise BadRequestData(f"entities: unknown members {', '.join(sorted(unknown))}; known: type, id, idPattern")
        item = {"type": _type_expression(sel["type"], r)}
        if "id" in sel:
            item["id"] = check_uri(sel["id"], "entities: id")
        if "idPattern" in sel:
            pattern = _text(sel["idPattern"], "entities: idPattern", 256)
            try:
                re.compile(pattern)
            except re.error as exc:
                raise BadRequestData(f"entities: idPattern is not a regular expression: {exc}") from None
            item["idPattern"] = pattern
        out.append(item)
    return out


def _triggers(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"notificationTrigger must be a non-empty list of {', '.join(TRIGGERS)}")
    for t in value:
        if t not in TRIGGERS:
            raise BadRequestData(f"notificationTrigger: {str(t)[:40]!r} is not one of {', '.join(TRIGGERS)}")
    return list(dict.fromkeys(value))


def _q(value: Any, r: Resolver) -> dict[str, Any]:
    text = _text(value, "q", 4096)
    try:
        ql.parse_q(text, r.expand)
    except ValueError as exc:
        raise BadRequestData(f"q: {exc}") from None
    return {"text": text, "context": r.context}


def _scope(value: Any) -> str:
    text = _text(value, "scopeQ", 1024)
    try:
        ql.parse_scope_query(text)
    except ValueError as exc:
        raise BadRequestData(f"scopeQ: {exc}") from None
    return text


def _geoq(value: Any, r: Resolver) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData("geoQ must be an object {geometry, coordinates, georel, geoproperty}")
    unknown = set(value) - {"geometry", "coordinates", "georel", "geoproperty"}
    if unknown:
        raise BadRequestData(f"geoQ: unknown members {', '.join(sorted(unknown))}")
    for member in ("georel", "geometry"):
        if not isinstance(value.get(member), str):
            raise BadRequestData(f"geoQ.{member} is required, as a string")
    prop = value.get("geoproperty")
    if prop is not None:
        check_name(prop, "geoQ: geoproperty")
    try:
        gq = geoquery.parse_geoq(value.get("georel"), value.get("geometry"), value.get("coordinates"), prop, r.expand)
    except ValueError as exc:
        raise BadRequestData(f"geoQ: {exc}") from None
    return {"geometry": gq.geojson["type"], "coordinates": gq.geojson["coordinates"], "georel": value["georel"],
            "geoproperty": gq.geoproperty}


def parse_geoq(stored: dict[str, Any]) -> geoquery.GeoQuery:
    """The stored geoQ as a query (its geoproperty is already an IRI)."""
    return geoquery.parse_geoq(stored["georel"], stored["geometry"], stored["coordinates"], stored["geoproperty"],
                               lambda name: name)


def _pairs(value: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > 50:
        raise BadRequestData(f"{what} must be a list of at most 50 {{key, value}} pairs")
    out = []
    for kv in value:
        if not isinstance(kv, dict) or set(kv) != {"key", "value"}:
            raise BadRequestData(f"{what}: every member must be an object {{key, value}}")
        key = _text(kv["key"], f"{what}: key", 100)
        val = kv["value"]
        if not isinstance(val, str) or len(val) > 2000:
            raise BadRequestData(f"{what}: value of {key} must be a string of at most 2000 characters")
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", key):
            raise BadRequestData(f"{what}: {key[:40]!r} is not a header name (letters, digits and !#$%&'*+.^_`|~-)")
        if not re.fullmatch(r"[\x20-\x7e\t]*", val):
            raise BadRequestData(f"{what}: the value of {key} must be printable ASCII (it is sent as an HTTP "
                                 "header); percent-encode other characters")
        out.append({"key": key, "value": val})
    return out


def _endpoint(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or "uri" not in value:
        raise BadRequestData("notification.endpoint must be an object with a uri")
    unknown = set(value) - ENDPOINT
    if unknown:
        raise BadRequestData(f"notification.endpoint: unknown members {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(ENDPOINT))}")
    uri = check_uri(value["uri"], "notification.endpoint.uri")
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise BadRequestData(f"notification.endpoint.uri must be an http, https, mqtt or mqtts URL with a host, "
                             f"not {uri[:80]}")
    if parts.scheme.startswith("mqtt") and not parts.path.strip("/"):
        raise BadRequestData("an mqtt(s) endpoint names its topic in the path: mqtt://host:1883/the/topic")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise BadRequestData(f"notification.endpoint.uri has an invalid port: {uri[:80]}") from None
    out: dict[str, Any] = {"uri": uri, "accept": value.get("accept", "application/json")}
    if out["accept"] not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept must be {' or '.join(ACCEPTS)}")
    for member in ("receiverInfo", "notifierInfo"):
        if member in value:
            out[member] = _pairs(value[member], f"notification.endpoint.{member}")
    for kv in out.get("notifierInfo", []):
        if kv["key"] == "MQTT-QoS" and kv["value"] not in ("0", "1", "2"):
            raise BadRequestData("notification.endpoint.notifierInfo: MQTT-QoS must be 0, 1 or 2")
    return out


def _notification(value: Any, r: Resolver, old: dict[str, Any] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestData("notification must be an object with an endpoint")
    unknown = set(value) - NOTIFICATION - NOTIFICATION_READ_ONLY
    if unknown:
        raise BadRequestData(f"notification: unknown members {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(NOTIFICATION))}")
    out = dict(old or {"format": "normalized", "showChanges": False, "sysAttrs": False})
    if "endpoint" in value:
        out["endpoint"] = _endpoint(value["endpoint"])
    if "endpoint" not in out:
        raise BadRequestData("notification.endpoint is required: {\"uri\": \"http://…\"}")
    if "attributes" in value:
        out["attributes"] = _names(value["attributes"], "notification.attributes", r)
    if "format" in value:
        if value["format"] not in FORMATS:
            raise BadRequestData("notification.format must be normalized, concise, keyValues or simplified")
        out["format"] = FORMATS[value["format"]]
    for flag in ("showChanges", "sysAttrs"):
        if flag in value:
            out[flag] = _bool(value[flag], f"notification.{flag}")
            out["given"] = sorted({*out.get("given", []), flag})  # echoed when read back only when set
    if "join" in value:
        if value["join"] not in JOINS:
            raise BadRequestData("notification.join must be flat, inline or @none")
        out["join"] = value["join"]
    if "joinLevel" in value:
        level = value["joinLevel"]
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
            raise BadRequestData("notification.joinLevel must be a whole number from 1 to 10")
        out["joinLevel"] = level
    for member in ("pick", "omit"):
        if member in value:
            names = value[member].split(",") if isinstance(value[member], str) else value[member]
            if not isinstance(names, list) or not names or not all(isinstance(x, str) and x for x in names):
                raise BadRequestData(f"notification.{member} must be a non-empty list of entity member names")
            out[member] = [x if x in MEMBERS else r.expand(check_name(x, f"notification.{member}")) for x in names]
    if "pick" in out and "omit" in out:
        raise BadRequestData("notification.pick and notification.omit cannot be used together")
    if "attributes" in out and ("pick" in out or "omit" in out):
        raise BadRequestData("notification.attributes cannot be combined with pick or omit")
    return out


def _datasets(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 100:
        raise BadRequestData('datasetId must be a non-empty list of dataset URIs (or "@none")')
    return [v if v == "@none" else check_uri(v, "datasetId") for v in value]


def expand(body: Any, r: Resolver, now: datetime, *, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Subscription payload (or, with ``old``, a PATCH fragment merged into that stored form: members given
    replace the old ones, ``notification``'s members one by one) checked and in stored form."""
    if not isinstance(body, dict) or not body:
        raise BadRequestData("the body must be a JSON object (an NGSI-LD Subscription)")
    unknown = set(body) - TOP - READ_ONLY
    if unknown:
        raise BadRequestData(f"unknown Subscription members {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(sorted(TOP - {'@context'}))}")
    if old is None and body.get("type") != "Subscription":
        raise BadRequestData('a subscription must have "type": "Subscription"')
    if old is not None and body.get("type", "Subscription") != "Subscription":
        raise BadRequestData('type of a subscription is "Subscription"')
    if old is not None and "id" in body and body["id"] != old["id"]:
        raise BadRequestData("the id of a subscription cannot be changed")
    spec: dict[str, Any] = dict(old or {"type": "Subscription", "isActive": True})
    if old is None and "id" in body:
        spec["id"] = check_uri(body["id"], "id")
    for member in ("subscriptionName", "description", "lang"):
        if member in body:
            spec[member] = _text(body[member], member)
    parsers: dict[str, Callable[[Any], Any]] = {
        "entities": lambda v: _entities(v, r), "watchedAttributes": lambda v: _names(v, "watchedAttributes", r),
        "notificationTrigger": _triggers, "q": lambda v: _q(v, r), "scopeQ": _scope, "geoQ": lambda v: _geoq(v, r),
        "timeInterval": lambda v: _seconds(v, "timeInterval"), "throttling": lambda v: _seconds(v, "throttling"),
        "isActive": lambda v: _bool(v, "isActive"), "datasetId": _datasets,
    }
    if "isActive" in body:
        spec["isActiveGiven"] = True  # echoed when read back only when the subscriber set it
    for member, parse in parsers.items():
        if member in body:
            if body[member] is None and old is not None and member not in ("entities", "isActive"):
                spec.pop(member, None)  # a PATCH with null removes the member
            else:
                spec[member] = parse(body[member])
    if "expiresAt" in body:
        if body["expiresAt"] is None and old is not None:
            spec.pop("expiresAt", None)
        else:
            at = parse_time(body["expiresAt"], "expiresAt")
            if at <= now:
                raise BadRequestData(f"expiresAt {body['expiresAt']} is in the past")
            spec["expiresAt"] = iso(at)
    if "notification" in body or old is None:
        spec["notification"] = _notification(body.get("notification"), r, (old or {}).get("notification"))
    spec.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    if "entities" not in spec and "watchedAttributes" not in spec:
        raise BadRequestData("a subscription names entities, watchedAttributes or both")
    if "timeInterval" in spec and ("watchedAttributes" in spec or "throttling" in spec):
        raise BadRequestData("timeInterval (periodic notifications) cannot be combined with watchedAttributes "
                             "or throttling")
    if "timeInterval" in spec and "entities" not in spec:
        raise BadRequestData("a periodic subscription (timeInterval) must name its entities")
    return spec


def expires_at(spec: dict[str, Any]) -> datetime | None:
    raw = spec.get("expiresAt")
    return parse_time(raw, "expiresAt") if raw else None


def status(active: bool, expires: datetime | None, now: datetime) -> str:
    """active, paused (isActive false) or expired (§5.2.12)."""
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= now:
        return "expired"
    return "active" if active else "paused"


def _when(t: datetime | None) -> str | None:
    return iso(t) if t is not None else None


def render(spec: dict[str, Any], record: dict[str, Any], r: Resolver, *, sys_attrs: bool) -> dict[str, Any]:
    """A subscription as the caller sees it: names compacted in the caller's @context, with its status and
    the delivery record (``record``: jsonldContext, status, counters and times)."""
    out: dict[str, Any] = {"id": spec["id"], "type": "Subscription"}
    for member in ("subscriptionName", "description"):
        if member in spec:
            out[member] = spec[member]
    if "entities" in spec:
        out["entities"] = [{**e, "type": compact_types(e["type"], r)} for e in spec["entities"]]
    if "watchedAttributes" in spec:
        out["watchedAttributes"] = [r.compact(a) for a in spec["watchedAttributes"]]
    if "timeInterval" in spec:
        out["timeInterval"] = spec["timeInterval"]
    out["notificationTrigger"] = spec["notificationTrigger"]
    if "q" in spec:
        out["q"] = spec["q"]["text"]
    if "geoQ" in spec:
        g = spec["geoQ"]
        out["geoQ"] = {"geometry": g["geometry"], "coordinates": g["coordinates"], "georel": g["georel"],
                       "geoproperty": r.compact(g["geoproperty"])}
    for member in ("scopeQ", "throttling", "expiresAt", "lang", "datasetId"):
        if member in spec:
            out[member] = spec[member]
    if spec.get("isActiveGiven") or not spec["isActive"]:
        out["isActive"] = spec["isActive"]
    out["status"] = record["status"]
    out["jsonldContext"] = record["jsonldContext"]
    n = spec["notification"]
    shown: dict[str, Any] = {}
    if "attributes" in n:
        shown["attributes"] = [r.compact(a) for a in n["attributes"]]
    for member in ("pick", "omit"):
        if member in n:
            shown[member] = [x if x in MEMBERS else r.compact(x) for x in n[member]]
    for member in ("join", "joinLevel"):
        if member in n:
            shown[member] = n[member]
    shown["format"] = n["format"]
    for flag in ("showChanges", "sysAttrs"):
        if flag in n.get("given", ()) or n[flag]:
            shown[flag] = n[flag]
    shown["endpoint"] = n["endpoint"]
    if record["timesSent"]:  # from the first notification on
        shown["timesSent"] = record["timesSent"]
    if record["timesFailed"]:  # from the first failure on, as lastFailure (§5.2.14: both optional)
        shown["timesFailed"] = record["timesFailed"]
    if record["lastStatus"]:
        shown["status"] = record["lastStatus"]
    for member in ("lastNotification", "lastSuccess", "lastFailure"):
        if record.get(member) is not None:
            shown[member] = _when(record[member])
    out["notification"] = shown
    if sys_attrs:
        out["createdAt"], out["modifiedAt"] = _when(record["createdAt"]), _when(record["modifiedAt"])
    return out
