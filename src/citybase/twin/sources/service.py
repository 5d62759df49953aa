"""Registrations of context sources, and which of them a query must also ask (CIM 009 §5.9, §4.3.6)."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citybase.kernel import outbox
from citybase.twin.caching import REGISTRATIONS
from citybase.twin.errors import AlreadyExists, BadRequestData, ResourceNotFound
from citybase.twin.representation import check_name, check_uri, iso, parse_time
from citybase.twin.service import Call
from citybase.twin.sources import events
from citybase.twin.sources.models import TwinRegistration
from citybase.twin.sources.repository import RegistrationRepository

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
MODES = ("inclusive", "exclusive", "redirect", "auxiliary")
KEYS = {"id", "type", "information", "endpoint", "mode", "operations", "expiresAt", "contextSourceInfo", "tenant",
        "registrationName", "description", "management", "scope", "location", "observationInterval",
        "managementInterval", "refreshRate", "cacheDuration", "timeout", "cooldown", "@context"}
SYSTEM = {"createdAt", "modifiedAt", "status", "timesSent", "timesFailed", "lastSuccess", "lastFailure"}


def _information(items: Any, call: Call) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise BadRequestData("information must be a non-empty list of {entities, propertyNames, relationshipNames}")
    r = call.resolver
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequestData("each information item must be an object")
        entry: dict[str, Any] = {}
        ents = item.get("entities")
        if ents is not None:
            if not isinstance(ents, list) or not all(isinstance(e, dict) for e in ents):
                raise BadRequestData("information.entities must be a list of {id, idPattern, type}")
            entry["entities"] = []
            for e in ents:
                if "type" not in e:
                    raise BadRequestData("each registered entity needs a type")
                types = e["type"] if isinstance(e["type"], list) else [e["type"]]
                one: dict[str, Any] = {"type": [r.expand(check_name(t, "type")) for t in types]}
                if "id" in e:
                    one["id"] = check_uri(e["id"], "information.entities.id")
                if "idPattern" in e:
                    try:
                        re.compile(e["idPattern"])
                    except (re.error, TypeError):
                        raise BadRequestData("information.entities.idPattern is not a regular expression") from None
                    one["idPattern"] = e["idPattern"]
                entry["entities"].append(one)
        for key in ("propertyNames", "relationshipNames"):
            names = item.get(key)
            if names is not None:
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise BadRequestData(f"information.{key} must be a list of names")
                entry[key] = [r.expand(check_name(n)) for n in names]
        if not entry:
            raise BadRequestData("an information item needs entities, propertyNames or relationshipNames")
        out.append(entry)
    return out


def _expanded(body: Any, call: Call, *, partial: bool = False) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a ContextSourceRegistration object")
    if (not partial or "type" in body) and body.get("type") != "ContextSourceRegistration":
        raise BadRequestData('type must be "ContextSourceRegistration"')
    out: dict[str, Any] = {}
    if "information" in body or not partial:
        out["information"] = _information(body.get("information"), call)
    if "endpoint" in body or not partial:
        ep = body.get("endpoint")
        if not isinstance(ep, str) or not re.match(r"^https?://[^\s/]+", ep):
            raise BadRequestData("endpoint must be the http(s) URL of an NGSI-LD broker")
        out["endpoint"] = ep.rstrip("/")
    if "mode" in body:
        if body["mode"] not in MODES:
            raise BadRequestData(f"mode must be one of {', '.join(MODES)}")
        out["mode"] = body["mode"]
    if "expiresAt" in body:
        if body["expiresAt"] is None and partial:  # PATCH with null: never expires
            out["expiresAt"] = None
        else:
            when = parse_time(body["expiresAt"], "expiresAt")
            if when <= call.at:
                raise BadRequestData("expiresAt is in the past")
            out["expiresAt"] = iso(when)
    if "contextSourceInfo" in body:
        info = body["contextSourceInfo"]
        if not isinstance(info, list) or not all(isinstance(i, dict) and isinstance(i.get("key"), str)
                                                 and isinstance(i.get("value"), str) for i in info):
            raise BadRequestData("contextSourceInfo must be a list of {key, value} strings")
        out["contextSourceInfo"] = info
    for key in ("tenant", "registrationName", "description", "operations", "management", "scope", "location",
                "observationInterval", "managementInterval"):
        if key in body:
            out[key] = body[key]
    extra = {call.resolver.expand(check_name(k, "context source property")): v for k, v in body.items()
             if k not in KEYS and k not in SYSTEM}
    if extra:  # Context Source Properties (§5.2.9): further members, names expanded
        out["properties"] = {**(out.get("properties") or {}), **extra}
    return out


def create(*, session: Session, call: Call, body: Any) -> str:
    data = _expanded(body, call)
    rid = check_uri(body["id"], "id") if "id" in body else f"urn:ngsi-ld:ContextSourceRegistration:{uuid.uuid4()}"
    repo = RegistrationRepository(session)
    if repo.get(call.tenant, rid) is not None:
        raise AlreadyExists(f"a registration {rid} already exists")
    expires = parse_time(data["expiresAt"], "expiresAt") if "expiresAt" in data else None
    repo.add(TwinRegistration(tenant=call.tenant, registration_id=rid, endpoint=data["endpoint"],
                              mode=data.get("mode", "inclusive"), body=data, context=call.resolver.context,
                              expires_at=expires, created_at=call.at, modified_at=call.at))
    _changed(session, call, rid, "create", data["endpoint"], after=repo.get(call.tenant, rid))
    return rid


def get(*, session: Session, call: Call, registration_id: str) -> TwinRegistration:
    check_uri(registration_id, "the registration id")
    row = RegistrationRepository(session).get(call.tenant, registration_id)
    if row is None:
        raise ResourceNotFound(f"there is no registration {registration_id}")
    return row


def listed(*, session: Session, call: Call, query: Discovery | None = None) -> list[TwinRegistration]:
    """The tenant's registrations, or those a discovery query matches (§5.10.2.4)."""
    rows = RegistrationRepository(session).all(call.tenant)
    return rows if query is None else [r for r in rows if _discovered(r, query, call.resolver.expand)]


@dataclass
class Discovery:
    """A query of context source registrations (§5.10.2), its names already expanded."""

    types: Any = None  # a parsed type expression (twin.query)
    ids: list[str] | None = None
    id_pattern: str | None = None
    attrs: list[str] | None = None
    q: Any = None  # over the Context Source Properties
    csf: Any = None  # the same, the context source filter
    geo: Any = None  # over the registration's location
    timerel: str | None = None  # over observationInterval (observedAt) or managementInterval (createdAt, modifiedAt)
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: str = "observedAt"


def _as_entity(row: TwinRegistration, expand: Any) -> dict[str, Any]:
    """The registration as q and geo-queries see an entity: its properties as attributes."""
    attrs: dict[str, Any] = {}
    for iri, value in (row.body.get("properties") or {}).items():
        attrs[iri] = [value if isinstance(value, dict) and "type" in value else {"type": "Property", "value": value}]
    for key in ("endpoint", "mode", "registrationName", "description", "tenant"):
        value = row.mode if key == "mode" else row.body.get(key)
        if value is not None:
            attrs.setdefault(expand(key), [{"type": "Property", "value": value}])
    if row.body.get("location") is not None:
        attrs[LOCATION] = [{"type": "GeoProperty", "value": row.body["location"]}]
    return {"id": row.registration_id, "type": ["ContextSourceRegistration"], "attrs": attrs}


def _in_time(row: TwinRegistration, d: Discovery) -> bool:
    interval = row.body.get("observationInterval" if d.timeproperty == "observedAt" else "managementInterval")
    if not isinstance(interval, dict):
        return False
    try:
        start = parse_time(interval["startAt"], "startAt") if interval.get("startAt") else None
        end = parse_time(interval["endAt"], "endAt") if interval.get("endAt") else None
    except BadRequestData:
        return False
    assert d.time_at is not None
    if d.timerel == "before":
        return start is None or start < d.time_at
    if d.timerel == "after":
        return end is None or end > d.time_at
    return (start is None or d.end_time_at is None or start < d.end_time_at) and (end is None or end > d.time_at)


def _discovered(row: TwinRegistration, d: Discovery, expand: Any) -> bool:
    from citybase.twin import geoquery
    from citybase.twin import query as ql

    if d.types is not None or d.ids or d.id_pattern or d.attrs:
        if not any(_item_discovered(item, d) for item in row.body["information"]):
            return False
    entity = _as_entity(row, expand)
    if d.q is not None and not ql.matches(d.q, entity):
        return False
    if d.csf is not None and not ql.matches(d.csf, entity):
        return False
    if d.geo is not None and not geoquery.geo_matches(d.geo, entity):
        return False
    return d.timerel is None or _in_time(row, d)


def _item_discovered(item: dict[str, Any], d: Discovery) -> bool:
    from citybase.twin import query as ql

    names = set(item.get("propertyNames", ())) | set(item.get("relationshipNames", ()))
    if d.attrs and names and not set(d.attrs) & names:
        return False
    ents = item.get("entities")
    if not ents:  # only attribute names: any entity
        return True
    for e in ents:
        if d.types is not None and not ql.matches(d.types, {"type": e["type"]}):
            continue
        if d.ids:
            if "id" in e and e["id"] not in d.ids:
                continue
            if "idPattern" in e and not any(re.fullmatch(e["idPattern"], i) for i in d.ids):
                continue
        if d.id_pattern:
            if "id" in e and not re.fullmatch(d.id_pattern, e["id"]):
                continue
        return True
    return False


def update(*, session: Session, call: Call, registration_id: str, body: Any) -> None:
    row = get(session=session, call=call, registration_id=registration_id)
    data = _expanded(body, call, partial=True)
    before = snapshot(row)
    merged = {**row.body, **data}
    if "properties" in data:
        merged["properties"] = {**(row.body.get("properties") or {}), **data["properties"]}
    row.body = merged
    row.endpoint = merged["endpoint"]
    row.mode = merged.get("mode", row.mode)
    row.expires_at = parse_time(merged["expiresAt"], "expiresAt") if merged.get("expiresAt") else None
    row.modified_at = call.at
    session.flush()
    _changed(session, call, registration_id, "update", row.endpoint, before=before, after=row)


def delete(*, session: Session, call: Call, registration_id: str) -> None:
    row = get(session=session, call=call, registration_id=registration_id)
    endpoint, before = row.endpoint, snapshot(row)
    RegistrationRepository(session).remove(row)
    _changed(session, call, registration_id, "delete", endpoint, before=before)


def snapshot(row: TwinRegistration | dict[str, Any] | None) -> dict[str, Any] | None:
    """A registration as the registration_changed event carries it (``Registered``'s fields, JSON)."""
    if row is None or isinstance(row, dict):
        return row
    return {"registration_id": row.registration_id, "endpoint": row.endpoint, "mode": row.mode,
            "body": copy.deepcopy(row.body), "expires_at": iso(row.expires_at) if row.expires_at else None}


def from_snapshot(snap: dict[str, Any]) -> Registered:
    at = snap.get("expires_at")
    return Registered(snap["registration_id"], snap["endpoint"], snap["mode"], snap["body"],
                      parse_time(at, "expiresAt") if at else None)


def _changed(session: Session, call: Call, rid: str, op: str, endpoint: str, *,
             before: dict[str, Any] | None = None, after: TwinRegistration | None = None) -> None:
    REGISTRATIONS.changed(session)  # every process's copy of the registrations dropped
    outbox.queue(session, events.REGISTRATION_CHANGED, events.RegistrationChanged(
        tenant=call.tenant, id=rid, op=op, endpoint=endpoint, before=before, after=snapshot(after)).model_dump())


def shown(row: TwinRegistration, call: Call) -> dict[str, Any]:
    """A registration in the caller's @context."""
    r = call.resolver
    body = row.body
    info = []
    for item in body["information"]:
        entry: dict[str, Any] = {}
        if "entities" in item:
            entry["entities"] = []
            for e in item["entities"]:
                types = [r.compact(t) for t in e["type"]]
                one: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
                for k in ("id", "idPattern"):
                    if k in e:
                        one[k] = e[k]
                entry["entities"].append(one)
        for key in ("propertyNames", "relationshipNames"):
            if key in item:
                entry[key] = [r.compact(n) for n in item[key]]
        info.append(entry)
    out: dict[str, Any] = {"id": row.registration_id, "type": "ContextSourceRegistration", "information": info,
                           "endpoint": row.endpoint, "mode": row.mode}
    for key in ("expiresAt", "contextSourceInfo", "tenant", "registrationName", "description", "operations",
                "management", "scope", "location", "observationInterval", "managementInterval"):
        if body.get(key) is not None:
            out[key] = body[key]
    for iri, value in (body.get("properties") or {}).items():
        out.setdefault(r.compact(iri), value)
    return out


@dataclass(frozen=True)
class Registered:
    """What matching and forwarding read of a registration, kept in the process (``twin.sources``)."""

    registration_id: str
    endpoint: str
    mode: str
    body: dict[str, Any]
    expires_at: datetime | None


def _registered(session: Session, tenant: str) -> list[Registered]:
    """The tenant's registrations, read once per process until one changes (most tenants have none, and every
    query would otherwise read them)."""
    return REGISTRATIONS.get(session, tenant, lambda: [
        Registered(r.registration_id, r.endpoint, r.mode, copy.deepcopy(r.body), r.expires_at)
        for r in RegistrationRepository(session).all(tenant)])


def matching(*, session: Session, call: Call, types: Iterable[str] | None, ids: Iterable[str] | None,
             attrs: Iterable[str] | None) -> list[Registered]:
    """The live registrations of the tenant that may hold entities of these types or ids (and attributes)."""
    types, ids, attrs = set(types or ()), set(ids or ()), set(attrs or ())
    out = []
    for row in _registered(session, call.tenant):
        if row.expires_at is not None and row.expires_at.replace(tzinfo=call.at.tzinfo) <= call.at:
            continue
        if any(_item_matches(item, types, ids, attrs) for item in row.body["information"]):
            out.append(row)
    return out


def _item_matches(item: dict[str, Any], types: set[str], ids: set[str], attrs: set[str]) -> bool:
    names = set(item.get("propertyNames", ())) | set(item.get("relationshipNames", ()))
    if attrs and names and not attrs & names:
        return False
    ents = item.get("entities")
    if not ents:
        return True
    for e in ents:
        if types and not types & set(e["type"]):
            continue
        if ids:
            if "id" in e and e["id"] not in ids:
                continue
            if "idPattern" in e and not any(re.fullmatch(e["idPattern"], i) for i in ids):
                continue
        return True
    return False
