"""The twin's operations (NGSI-LD context information, temporal evolution, discovery, @contexts). Plain
functions on a session that never commit; every change writes the entity's latest state, appends its
instances to the history and queues one ``entity_changed`` event in the same transaction."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shapely.geometry import shape
from sqlalchemy.orm import Session

from citybase.kernel import outbox
from citybase.kernel.runtime import invalidate
from citybase.twin import events
from citybase.twin.errors import (
    AlreadyExists,
    BadRequestData,
    InvalidRequest,
    NgsiError,
    NonexistentTenant,
    ResourceNotFound,
)
from citybase.twin.ldcontext import NGSI, Resolver
from citybase.twin.models import TwinEntity, TwinHistory
from citybase.twin.repository import TwinRepository
from citybase.twin.representation import (
    CORE_MEMBERS,
    GEO_IRIS,
    VALUE_KEY,
    check_name,
    check_uri,
    expand_attribute,
    expand_attributes,
    expand_entity,
    expand_instance,
    expand_types,
    iso,
    numeric,
    parse_time,
)

LOCATION = NGSI + "location"
NULL = "urn:ngsi-ld:null"


@dataclass
class Call:
    """What every operation needs to know of its request: the tenant, the caller's @context and the time."""

    tenant: str
    resolver: Resolver
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def now(self) -> str:
        """``at`` in ISO 8601 (formatted once per value of ``at``: a batch asks for it several times an entity)."""
        got = self.__dict__.get("_now")
        if got is None or got[0] is not self.at:
            got = self.__dict__["_now"] = (self.at, iso(self.at))
        return got[1]


@dataclass
class Outcome:
    """Per-attribute result of an update that may partly fail (NGSI-LD's UpdateResult)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)  # (attribute IRI, reason)


# ------------------------------------------------------------------------------------------------ helpers


def doc_of(row: TwinEntity) -> dict[str, Any]:
    """The stored form of an entity row."""
    doc: dict[str, Any] = {"id": row.entity_id, "type": list(row.types or []), "attrs": row.attrs or {},
                           "createdAt": iso(row.created_at), "modifiedAt": iso(row.modified_at)}
    if row.scopes:
        doc["scope"] = list(row.scopes)
    return doc


def _location(doc: dict[str, Any]) -> tuple[tuple | None, str | None]:
    """The bounding box and GeoJSON of the entity's default ``location`` instance (for geoQ's indexes)."""
    instances = doc["attrs"].get(LOCATION) or []
    inst = next((i for i in instances if "datasetId" not in i), instances[0] if instances else None)
    if not inst or inst.get("type") != "GeoProperty":
        return None, None
    value = inst["value"]
    xy = value.get("coordinates") if isinstance(value, dict) and value.get("type") == "Point" else None
    if isinstance(xy, list) and len(xy) in (2, 3) and all(type(c) in (int, float) for c in xy):
        bounds = (float(xy[0]), float(xy[1]), float(xy[0]), float(xy[1]))  # a Point's box, without shapely
    else:
        bounds = tuple(shape(value).bounds)
    return bounds, json.dumps(value)


def _history_rows(tenant: str, doc: dict[str, Any], attrs: dict[str, list[dict[str, Any]]], at: datetime,
                  *, deleted: bool = False, instance_id: Callable[[], str] | None = None) -> list[dict[str, Any]]:
    """History rows of these instances; ``instance_id`` makes their ids (default one uuid4 each)."""
    rows = []
    for iri, instances in attrs.items():
        for inst in instances:
            observed = inst.get("observedAt")
            rows.append({"tenant": tenant, "entity_id": doc["id"], "types": doc["type"], "attr": iri,
                         "dataset_id": inst.get("datasetId"),
                         "instance_id": instance_id() if instance_id else f"urn:ngsi-ld:{uuid.uuid4()}",
                         "observed_at": parse_time(observed, "observedAt") if observed else None,
                         "recorded_at": at, "instance": inst, "number": numeric(inst.get("value")),
                         "deleted": deleted})
    return rows


def _tenant(repo: TwinRepository, call: Call, *, write: bool) -> None:
    if write:
        repo.ensure_tenant(call.tenant, call.at)
    elif not repo.tenant_exists(call.tenant):
        raise NonexistentTenant(f"there is no tenant {call.tenant!r}; a tenant is created by its first write")


def _changed(session: Session, call: Call, doc: dict[str, Any], op: str, attrs: Sequence[str]) -> None:
    outbox.queue(session, events.ENTITY_CHANGED, events.EntityChanged(
        tenant=call.tenant, id=doc["id"], types=doc["type"], op=op, attrs=sorted(set(attrs)),
        modified_at=call.now).model_dump())


def _changed_many(session: Session, call: Call, changes: Sequence[tuple[dict[str, Any], str, Sequence[str]]]) -> None:
    """One ``entity_changed`` event per (doc, op, attrs), in that order, queued with one INSERT: the fields
    :class:`events.EntityChanged` has, built as plain dicts (a model per entity cost more than the write)."""
    now, tenant = call.now, call.tenant
    outbox.queue_many(session, events.ENTITY_CHANGED, [
        {"tenant": tenant, "id": doc["id"], "types": list(doc["type"]), "op": op, "attrs": sorted(set(attrs)),
         "modified_at": now} for doc, op, attrs in changes])


def _instance_ids() -> Callable[[], str]:
    """Instance ids of one batch: one random part and a counter (a uuid4 per instance cost a tenth of a batch)."""
    prefix, n = f"urn:ngsi-ld:{uuid.uuid4()}:", iter(range(1 << 62))
    return lambda: f"{prefix}{next(n)}"


def _write(session: Session, repo: TwinRepository, call: Call, row: Any, doc: dict[str, Any],
           op: str, written: dict[str, list[dict[str, Any]]], removed: Sequence[str] = (),
           removed_instances: dict[str, list[dict[str, Any]]] | None = None) -> TwinEntity:
    bbox, geojson = _location(doc)
    if row is None:
        row = repo.add(call.tenant, doc, call.at, bbox, geojson)
    elif isinstance(row, TwinEntity):
        repo.save(row, doc, call.at, bbox, geojson)
    else:  # a plain row (_locked): one UPDATE, no ORM object to flush
        moved = (row.attrs or {}).get(LOCATION) != doc["attrs"].get(LOCATION)
        repo.update_many(call.tenant, [(row.pk, doc, bbox, geojson, moved)], call.at)
    repo.append_history(_history_rows(call.tenant, doc, written, call.at))
    if removed:
        gone = removed_instances or {}  # the instances deleted, when known: their type and datasetId are kept
        repo.append_history(_history_rows(call.tenant, doc, {a: [_deletion(i, call.now) for i in gone.get(a, [{}])]
                                                             for a in removed}, call.at, deleted=True))
    _changed_many(session, call, [(doc, op, [*written, *removed])])
    return row


def _deletion(inst: dict[str, Any], now: str) -> dict[str, Any]:
    """The history's record of an instance deleted: its type with urn:ngsi-ld:null as its value."""
    kind = inst.get("type") if inst.get("type") in VALUE_KEY else "Property"
    out = {"type": kind, VALUE_KEY[kind]: {"@none": NULL} if kind == "LanguageProperty" else NULL, "deletedAt": now}
    if inst.get("datasetId"):
        out["datasetId"] = inst["datasetId"]
    return out


def _existing(repo: TwinRepository, call: Call, entity_id: str, *, lock: bool = True) -> TwinEntity:
    check_uri(entity_id, "the entity id")
    row = repo.lock(call.tenant, entity_id) if lock else repo.get(call.tenant, entity_id)
    if row is None:
        raise ResourceNotFound(f"there is no entity {entity_id}" + (f" in tenant {call.tenant!r}" if call.tenant else ""))
    return row


def _locked(repo: TwinRepository, call: Call, entity_id: str) -> Any:
    """The entity's row held for this transaction's update, as a plain row (pk, entity_id, types, scopes,
    attrs, created_at, modified_at) for :func:`doc_of` and :func:`_write`; ResourceNotFound when there is none."""
    check_uri(entity_id, "the entity id")
    row = repo.lock_many(call.tenant, [entity_id]).get(entity_id)
    if row is None:
        raise ResourceNotFound(f"there is no entity {entity_id}" + (f" in tenant {call.tenant!r}" if call.tenant else ""))
    return row


def _put_instance(instances: list[dict[str, Any]], inst: dict[str, Any]) -> list[dict[str, Any]]:
    """Instances with ``inst`` replacing the one of its datasetId (keeping that one's createdAt), or added."""
    out = []
    placed = False
    for old in instances:
        if old.get("datasetId") == inst.get("datasetId"):
            inst = {**inst, "createdAt": old.get("createdAt", inst["createdAt"])}
            out.append(inst)
            placed = True
        else:
            out.append(old)
    if not placed:
        out.append(inst)
    return out


# ------------------------------------------------------------------------------------------------ entities


def create_entity(*, session: Session, call: Call, body: Any) -> str:
    """Create an entity; AlreadyExists when its id is taken in the tenant."""
    repo = TwinRepository(session)
    doc = expand_entity(body, call.resolver, call.now)
    _tenant(repo, call, write=True)
    if repo.get(call.tenant, doc["id"]) is not None:
        raise AlreadyExists(f"an entity {doc['id']} already exists", entityId=doc["id"])
    _write(session, repo, call, None, doc, "create", doc["attrs"])
    return doc["id"]


def get_entity(*, session: Session, call: Call, entity_id: str) -> dict[str, Any]:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    return doc_of(_existing(repo, call, entity_id, lock=False))


def get_entities(*, session: Session, call: Call, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The entities of these ids that exist in the tenant (for linked-entity retrieval)."""
    return {i: doc_of(r) for i, r in TwinRepository(session).get_many(call.tenant, ids).items()}


def _add_types(doc: dict[str, Any], types: list[str]) -> None:
    """The entity's types with these added (an entity keeps the types it had)."""
    doc["type"].extend(t for t in types if t not in doc["type"])


def _entity_body(body: Any, entity_id: str, what: str) -> None:
    """A body for an existing entity: an object whose id, if it names one, is the entity's."""
    if not isinstance(body, dict):
        raise BadRequestData(f"the body must be a JSON object ({what})")
    if "id" in body and body["id"] != entity_id:
        raise BadRequestData(f"the body's id {str(body['id'])[:80]} is not the entity's id {entity_id}")


def replace_entity(*, session: Session, call: Call, entity_id: str, body: Any) -> None:
    """Replace every attribute (and the type, when given) of an existing entity."""
    _entity_body(body, entity_id, "an NGSI-LD entity")
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    row = _locked(repo, call, entity_id)
    new, removed = _replaced(doc_of(row), body, entity_id, call)
    _write(session, repo, call, row, new, "replace", new["attrs"], removed)


def _replaced(old: dict[str, Any], body: dict[str, Any], entity_id: str, call: Call) -> tuple[dict[str, Any], list[str]]:
    """The entity ``old`` replaced by ``body``, and the attributes that went."""
    new = expand_entity({**body, "id": entity_id}, call.resolver, call.now, need_type=False)
    new["type"] = new.get("type") or old["type"]
    new["createdAt"] = old["createdAt"]
    return new, [a for a in old["attrs"] if a not in new["attrs"]]


def delete_entity(*, session: Session, call: Call, entity_id: str) -> None:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    row = _existing(repo, call, entity_id)
    doc = doc_of(row)
    repo.remove(row)
    _changed(session, call, doc, "delete", list(doc["attrs"]))


def is_null(raw: Any) -> bool:
    """An attribute fragment that asks for deletion (CIM 009 v1.8 §4.5: ``urn:ngsi-ld:null``)."""
    if raw == NULL:
        return True
    if not isinstance(raw, dict):
        return False
    for key in ("value", "object", "vocab", "json", "valueList", "objectList"):
        if key in raw and (raw[key] == NULL or raw[key] == [NULL]):
            return True
    lm = raw.get("languageMap")
    return isinstance(lm, dict) and lm.get("@none") == NULL


def _split_nulls(body: dict[str, Any], r: Resolver) -> tuple[dict[str, Any], dict[str, list[str | None]]]:
    """The fragment without its deletions, and the deletions: attribute IRI -> datasetIds (None = default)."""
    keep: dict[str, Any] = {}
    nulls: dict[str, list[str | None]] = {}
    for name, raw in body.items():
        items = raw if isinstance(raw, list) else [raw]
        if name not in ("@context", "id", "type", "scope") and items and all(is_null(i) for i in items):
            nulls[r.expand(check_name(name))] = [i.get("datasetId") if isinstance(i, dict) else None for i in items]
        else:
            keep[name] = raw
    return keep, nulls


def _drop(attrs: dict[str, list[dict[str, Any]]], nulls: dict[str, list[str | None]]) -> list[str]:
    removed = []
    for iri, datasets in nulls.items():
        current = attrs.get(iri)
        if not current:
            continue
        left = [o for o in current if o.get("datasetId") not in datasets]
        if left:
            attrs[iri] = left
        else:
            attrs.pop(iri)
        removed.append(iri)
    return removed


def append_attributes(*, session: Session, call: Call, entity_id: str, body: Any, no_overwrite: bool,
                      update: bool = False) -> Outcome:
    """Add attributes (replacing the instance of the same datasetId unless ``no_overwrite``); a fragment whose
    value is ``urn:ngsi-ld:null`` deletes that attribute (instance); ``type`` adds types, ``scope`` replaces
    the scopes (unless ``no_overwrite`` and there are some)."""
    fragment = _appending(body, call)  # the body is checked before the entity is read
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    row = _locked(repo, call, entity_id)
    doc = doc_of(row)
    out, written, removed, changed = _appended(doc, fragment, no_overwrite, update)
    if changed:
        _write(session, repo, call, row, doc, "update", written, removed)
    return out


@dataclass
class _Fragment:
    """An attribute fragment read: types to add, the scopes, the rest of the body, deletions, instances."""

    types: list[str]
    scope: Any
    body: dict[str, Any]
    nulls: dict[str, list[str | None]]
    incoming: dict[str, list[dict[str, Any]]]


def _appending(body: Any, call: Call) -> _Fragment:
    if not isinstance(body, dict) or not body:
        raise BadRequestData("the body must be a non-empty JSON object of attributes")
    from citybase.twin.representation import expand_scope

    types = expand_types(body["type"], call.resolver) if "type" in body else []
    scope = expand_scope(body["scope"]) if "scope" in body else None
    body, nulls = _split_nulls(body, call.resolver)
    return _Fragment(types, scope, body, nulls, expand_attributes(body, call.resolver, call.now))


def _appended(doc: dict[str, Any], f: _Fragment, no_overwrite: bool, update: bool = False
              ) -> tuple[Outcome, dict[str, list[dict[str, Any]]], list[str], bool]:
    """``doc`` with the fragment appended (in place): the outcome, the instances written, the attributes
    removed, and whether anything changed. ``update`` (PATCH …/attrs) changes a scope only where there is one."""
    types, scope, body, nulls, incoming = f.types, f.scope, f.body, f.nulls, f.incoming
    _add_types(doc, types)
    out, written = Outcome(), {}
    if scope is not None and update and not doc.get("scope"):  # an update changes scopes there are
        out.not_updated.append(("scope", "the entity has no scope to update"))
        scope = None
    if scope is not None:  # noOverwrite adds the scopes to those there are; otherwise they are replaced
        doc["scope"] = list(dict.fromkeys([*doc.get("scope", []), *scope])) if no_overwrite else scope
    attrs = dict(doc["attrs"])
    removed = _drop(attrs, nulls)
    out.updated.extend(removed)
    for iri, instances in incoming.items():
        current = list(attrs.get(iri, []))
        done = []
        for inst in instances:
            if no_overwrite and any(o.get("datasetId") == inst.get("datasetId") for o in current):
                out.not_updated.append((iri, "the attribute exists and noOverwrite was asked"))
                continue
            current = _put_instance(current, inst)
            done.append(inst)
        if done:
            attrs[iri] = current
            written[iri] = done
            out.updated.append(iri)
    doc["attrs"] = attrs
    return out, written, removed, bool(written or removed or "type" in body or scope is not None)


def update_attributes(*, session: Session, call: Call, entity_id: str, body: Any) -> Outcome:
    """PATCH …/attrs: since NGSI-LD v1.8 attributes given are written whether they existed or not (the
    instance of the same datasetId replaced), ``urn:ngsi-ld:null`` deletes, ``type`` adds types."""
    return append_attributes(session=session, call=call, entity_id=entity_id, body=body, no_overwrite=False,
                             update=True)


def _merge_instance(old: dict[str, Any], fragment: dict[str, Any], iri: str, call: Call) -> dict[str, Any]:
    """An instance with the members of a partial fragment merged in (its type kept unless the fragment says)."""
    base = {k: v for k, v in old.items() if k not in ("createdAt", "modifiedAt")}
    raw = {**_restore(base), **fragment}
    if "type" not in fragment:
        raw["type"] = old["type"]
    inst = expand_instance(raw, iri, call.resolver, call.now)
    inst["createdAt"] = old.get("createdAt", inst["createdAt"])
    return inst


def _restore(inst: dict[str, Any]) -> dict[str, Any]:
    """Stored members back as a payload fragment (sub-attributes keep their IRIs, which expand to themselves)."""
    return {k: (_restore(v) if isinstance(v, dict) and k not in CORE_MEMBERS else v) for k, v in inst.items()}


def partial_update_attribute(*, session: Session, call: Call, entity_id: str, attr: str, body: Any) -> None:
    """PATCH one attribute: the given members replace the instance's (datasetId selects the instance)."""
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object (an attribute fragment)")
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    row = _locked(repo, call, entity_id)
    doc = doc_of(row)
    iri = call.resolver.expand(check_name(attr))
    fragments = body if isinstance(body, list) else [body]
    attrs = dict(doc["attrs"])
    current = list(attrs.get(iri, []))
    written = []
    removed: list[str] = []
    for fragment in fragments:
        if not isinstance(fragment, dict):
            raise BadRequestData("an attribute fragment must be a JSON object")
        ds = fragment.get("datasetId")
        old = next((o for o in current if o.get("datasetId") == ds), None)
        if old is None:
            raise ResourceNotFound(f"entity {entity_id} has no attribute {attr}" + (f" with datasetId {ds}" if ds else ""))
        if is_null(fragment):
            current = [o for o in current if o.get("datasetId") != ds]
            removed = [iri]
            continue
        if fragment.get("type") not in (None, old["type"]):
            raise BadRequestData(f"attribute {attr} is a {old['type']}; a partial update cannot make it a "
                                 f"{str(fragment['type'])[:40]} (replace the attribute instead)")
        inst = _merge_instance(old, fragment, iri, call)
        current = _put_instance(current, inst)
        written.append(inst)
    if current:
        attrs[iri] = current
    else:
        attrs.pop(iri, None)
    doc["attrs"] = attrs
    _write(session, repo, call, row, doc, "update", {iri: written} if written else {}, removed)


def replace_attribute(*, session: Session, call: Call, entity_id: str, attr: str, body: Any) -> None:
    """PUT one attribute: the instance of its datasetId replaced; ResourceNotFound when there is none."""
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    if attr.startswith("@") or attr in ("id", "type", "scope"):
        raise BadRequestData(f"{attr[:80]!r} is a JSON-LD keyword or an entity member, not an attribute to replace")
    row = _locked(repo, call, entity_id)
    doc = doc_of(row)
    iri = call.resolver.expand(check_name(attr))
    instances = expand_attribute(body, iri, call.resolver, call.now)
    current = list(doc["attrs"].get(iri, []))
    for inst in instances:
        if not any(o.get("datasetId") == inst.get("datasetId") for o in current):
            raise ResourceNotFound(f"entity {entity_id} has no attribute {attr} to replace")
        current = _put_instance(current, inst)
    doc["attrs"] = {**doc["attrs"], iri: current}
    _write(session, repo, call, row, doc, "update", {iri: instances})


def delete_attribute(*, session: Session, call: Call, entity_id: str, attr: str, dataset_id: str | None,
                     delete_all: bool) -> None:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    row = _locked(repo, call, entity_id)
    doc = doc_of(row)
    if attr == "scope":  # the entity's scopes, deleted like an attribute
        if not doc.get("scope"):
            raise ResourceNotFound(f"entity {entity_id} has no scope")
        doc.pop("scope")
        _write(session, repo, call, row, doc, "update", {})
        return
    iri = call.resolver.expand(check_name(attr))
    current = list(doc["attrs"].get(iri, []))
    if delete_all:
        keep = []
    else:
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")
        keep = [o for o in current if o.get("datasetId") != dataset_id]
    if not current or len(keep) == len(current):
        raise ResourceNotFound(f"entity {entity_id} has no attribute {attr}" +
                               (f" with datasetId {dataset_id}" if dataset_id else ""))
    attrs = dict(doc["attrs"])
    if keep:
        attrs[iri] = keep
    else:
        attrs.pop(iri)
    doc["attrs"] = attrs
    _write(session, repo, call, row, doc, "update", {}, [iri],
           {iri: [o for o in current if o not in keep]})


def merge_entity(*, session: Session, call: Call, entity_id: str, body: Any) -> None:
    """PATCH an entity (merge-patch): given attributes merged into the existing ones, new ones added,
    ``urn:ngsi-ld:null`` deletes."""
    _entity_body(body, entity_id, "an entity fragment")
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    row = _locked(repo, call, entity_id)
    doc = doc_of(row)
    if "type" in body:
        _add_types(doc, expand_types(body["type"], call.resolver))
    attrs = dict(doc["attrs"])
    written: dict[str, list[dict[str, Any]]] = {}
    body, nulls = _split_nulls(body, call.resolver)  # urn:ngsi-ld:null deletes (the instance of its datasetId)
    removed = _drop(attrs, nulls)
    for name, raw in body.items():
        if name in ("@context", "id", "type", "scope", "createdAt", "modifiedAt"):
            continue
        iri = call.resolver.expand(check_name(name))
        fragments = raw if isinstance(raw, list) else [raw]
        current = list(attrs.get(iri, []))
        done = []
        for fragment in fragments:
            ds = fragment.get("datasetId") if isinstance(fragment, dict) else None
            old = next((o for o in current if o.get("datasetId") == ds), None)
            if old is not None and isinstance(fragment, dict):
                inst = _merge_instance(old, fragment, iri, call)
            elif old is not None:
                inst = _merge_instance(old, {"value": fragment}, iri, call)
            else:
                inst = expand_instance(fragment, iri, call.resolver, call.now)
            current = _put_instance(current, inst)
            done.append(inst)
        attrs[iri] = current
        written[iri] = done
    doc["attrs"] = attrs
    _write(session, repo, call, row, doc, "update", written, removed)


# ------------------------------------------------------------------------------------------------ batches


@dataclass
class Refused:
    """An entity of a batch refused before its operation runs (its @context where it must not be)."""

    item: Any
    reason: str

    def get(self, key: str, default: Any = None) -> Any:
        return self.item.get(key, default) if isinstance(self.item, dict) else default


class Partial(NgsiError):
    """An entity of a batch done in part: what was done stays, and the entity is listed among the errors."""


@dataclass
class BatchResult:
    success: list[str] = field(default_factory=list)
    errors: list[tuple[str | None, NgsiError]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


def _batch(items: Any, what: str) -> list[Any]:
    if not isinstance(items, list) or not items:
        raise BadRequestData(f"the body must be a non-empty JSON array of {what}")
    if len(items) > 10_000:
        raise BadRequestData(f"a batch holds at most 10,000 {what}; split it")
    return items


def _each(session: Session, items: list[Any], one: Callable[[Any], str | None]) -> BatchResult:
    """Run ``one`` per item so that one bad entity fails alone: in its own savepoint on PostgreSQL. On SQLite
    there is none (pysqlite's RELEASE of an outermost SAVEPOINT commits, so a later fault of the request could
    no longer be rolled back); there every refusal of ``one`` comes before it writes the entity."""
    out = BatchResult()
    pg = session.get_bind().dialect.name == "postgresql"
    for item in items:
        eid = item.get("id") if isinstance(item, dict | Refused) else item if isinstance(item, str) else None
        sp = session.begin_nested() if pg else None
        try:
            if isinstance(item, Refused):
                raise BadRequestData(item.reason)
            made = one(item)
            if sp is not None:
                sp.commit()
            out.success.append(eid)
            if made:
                out.created.append(made)
        except Partial as exc:
            if sp is not None:
                sp.commit()
            out.errors.append((eid if isinstance(eid, str) else None, exc))
        except NgsiError as exc:
            if sp is not None:
                sp.rollback()
            out.errors.append((eid if isinstance(eid, str) else None, exc))
    return out


def batch_create(*, session: Session, call: Call, items: Any) -> BatchResult:
    items = _batch(items, "entities")

    def one(item: Any) -> str:  # a second entity of the same id: AlreadyExists, for it alone
        return create_entity(session=session, call=call, body=item)

    return _each(session, items, one)


def batch_upsert(*, session: Session, call: Call, items: Any, update_only: bool) -> BatchResult:
    """Create what is new; replace (``options=replace``, the default) or update (``options=update``) the rest.

    Every entity's new state is worked out in memory first (each refusal for its entity alone, before anything
    is written, as :func:`_each` asks), then all of them are written at once: one read of the existing rows
    (held for update), one INSERT and one UPDATE (executemany), one statement for the geometries, one append
    of the history (COPY on PostgreSQL) and the events. The same semantics as one operation per entity: an id
    given twice is created by the first and updated by the second."""
    items = _batch(items, "entities")
    repo = TwinRepository(session)
    out = BatchResult()
    ids = list(dict.fromkeys(i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)))
    current: dict[str, dict[str, Any]] = {}  # id -> the entity as it stands (read, or made by this batch)
    pks: dict[str, int] = {}
    stored: dict[str, Any] = {}  # id -> its location as read
    new: set[str] = set()
    history: list[dict[str, Any]] = []
    changes: list[tuple[dict[str, Any], str, list[str]]] = []
    instance_id = _instance_ids()
    tenant_ready = False
    for item in items:
        eid = item.get("id") if isinstance(item, dict | Refused) else item if isinstance(item, str) else None
        try:
            if isinstance(item, Refused):
                raise BadRequestData(item.reason)
            if not isinstance(item, dict) or "id" not in item:
                raise BadRequestData("every entity of the batch needs an id")
            check_uri(item["id"], "id")
            if not tenant_ready:  # the tenant made (and the rows read) with the first entity that gets this far
                _tenant(repo, call, write=True)
                times: dict[datetime, str] = {}  # the rows of a batch written together share their times
                for i, row in repo.lock_many(call.tenant, ids).items():
                    pks[i] = row.pk
                    stored[i] = (row.attrs or {}).get(LOCATION)
                    created = times.get(row.created_at) or times.setdefault(row.created_at, iso(row.created_at))
                    modified = times.get(row.modified_at) or times.setdefault(row.modified_at, iso(row.modified_at))
                    current[i] = {"id": row.entity_id, "type": list(row.types or []), "attrs": row.attrs or {},
                                  "createdAt": created, "modifiedAt": modified,
                                  **({"scope": list(row.scopes)} if row.scopes else {})}
                tenant_ready = True
            eid = item["id"]
            old = current.get(eid)
            if old is None:
                doc = expand_entity(item, call.resolver, call.now)
                written, removed, op = doc["attrs"], [], "create"
                new.add(eid)
                out.created.append(eid)
            elif update_only:
                doc = {**old, "type": list(old["type"]), "attrs": dict(old["attrs"])}
                _, written, removed, changed = _appended(doc, _appending(item, call), False)
                op = "update" if changed else ""
            else:
                _entity_body(item, eid, "an NGSI-LD entity")
                doc, removed = _replaced(old, item, eid, call)
                written, op = doc["attrs"], "replace"
            if op:
                if old is not None:
                    doc["modifiedAt"] = call.now
                current[eid] = doc
                history.extend(_history_rows(call.tenant, doc, written, call.at, instance_id=instance_id))
                if removed:
                    history.extend(_history_rows(call.tenant, doc, {
                        a: [{"type": "Property", "value": NULL, "deletedAt": call.now}] for a in removed},
                        call.at, deleted=True, instance_id=instance_id))
                changes.append((doc, op, [*written, *removed]))
            out.success.append(eid)
        except NgsiError as exc:
            out.errors.append((eid if isinstance(eid, str) else None, exc))
    if changes:
        touched = list(dict.fromkeys(doc["id"] for doc, _, _ in changes))
        located = {i: _location(current[i]) for i in touched}
        repo.insert_many(call.tenant, [(current[i], *located[i]) for i in touched if i in new], call.at)
        repo.update_many(call.tenant, [(pks[i], current[i], *located[i], stored[i] != current[i]["attrs"].get(LOCATION))
                                       for i in touched if i not in new], call.at)
        repo.append_history(history)
        _changed_many(session, call, changes)
    return out


def city_call(tenant: str = "") -> Call:
    """The call the city's own projections write with (the default tenant, the city's @context terms), for
    domains that keep their things in the twin (the IoT devices)."""
    from citybase.twin.city import city_call as call

    return call(tenant)


@dataclass
class Observation:
    """New readings of one entity's attributes (the IoT ingest): ``points`` maps an attribute's short name (in the
    call's context) to ``(observedAt, value, unitCode)`` tuples, in any order, ``observedAt`` an aware
    datetime."""

    entity_id: str
    points: dict[str, list[tuple[datetime, Any, str | None]]]


def record_observations(*, session: Session, call: Call, observations: Sequence[Observation]) -> int:
    """Write readings into existing entities at once: each attribute's default instance becomes its latest
    reading (kept when a newer one is already stored), EVERY reading becomes a history row, each entity one
    change event when the tenant has ever had a subscription (``entity_changed`` is what subscriptions follow;
    the readings themselves reach other systems through the IoT feeds).

    The entities are not read: one statement merges the new instances into their stored documents and
    answers their types (``TwinRepository.merge_observations``), one append writes the history (COPY on
    PostgreSQL). An observed attribute's instances with a ``datasetId`` are replaced too: an observation is
    the attribute's default instance. Entities that do not exist are skipped; returns how many were
    written."""
    if not observations:
        return 0
    repo = TwinRepository(session)
    _tenant(repo, call, write=True)
    now, at = call.now, call.at
    iris: dict[str, str] = {}
    patches: dict[str, dict[str, list[dict[str, Any]]]] = {}
    history: list[tuple[str, str, datetime, dict[str, Any], Any]] = []  # entity, attribute, observed, instance, value
    for o in observations:
        patch = patches.setdefault(o.entity_id, {})
        for name, points in o.points.items():
            iri = iris.get(name)
            if iri is None:
                iri = iris[name] = call.resolver.expand(name)
            latest: dict[str, Any] | None = None
            for observed, value, unit in sorted(points, key=lambda p: p[0]) if len(points) > 1 else points:
                inst: dict[str, Any] = {"type": "Property", "value": value,
                                        "observedAt": observed.isoformat().replace("+00:00", "Z")}
                if unit:
                    inst["unitCode"] = unit
                inst["createdAt"] = inst["modifiedAt"] = now
                history.append((o.entity_id, iri, observed, inst, value))
                latest = inst
            if latest is not None and (iri not in patch or patch[iri][0]["observedAt"] <= latest["observedAt"]):
                patch[iri] = [latest]
    types = repo.merge_observations(call.tenant, patches, at)
    batch = f"urn:ngsi-ld:{uuid.uuid4()}:"  # instance ids: one random part per batch and a counter (uuid4 per
    tenant = call.tenant  # reading cost a seventh of the ingest)
    repo.append_history([{"tenant": tenant, "entity_id": eid, "types": types[eid], "attr": iri, "dataset_id": None,
                          "instance_id": f"{batch}{n}", "observed_at": observed, "recorded_at": at, "instance": inst,
                          "number": numeric(value), "deleted": False}
                         for n, (eid, iri, observed, inst, value) in enumerate(history) if eid in types])
    from citybase.twin.subscriptions.repository import SubscriptionRepository

    if SubscriptionRepository(session).revision(call.tenant):  # a change nobody can subscribe to is not announced:
        for eid, patch in patches.items():  # at a sensor's rate the outbox row per entity would cost as much as
            if eid in types:  # the write
                _changed(session, call, {"id": eid, "type": types[eid]}, "update", sorted(patch))
    return len(types)


def _batch_upsert_each(*, session: Session, call: Call, items: Any, update_only: bool) -> BatchResult:
    """:func:`batch_upsert` one operation per entity (what it did before it wrote a batch at once)."""
    items = _batch(items, "entities")
    repo = TwinRepository(session)

    def one(item: Any) -> str | None:
        if not isinstance(item, dict) or "id" not in item:
            raise BadRequestData("every entity of the batch needs an id")
        check_uri(item["id"], "id")
        _tenant(repo, call, write=True)
        if repo.get(call.tenant, item["id"]) is None:
            return create_entity(session=session, call=call, body=item)
        if update_only:
            append_attributes(session=session, call=call, entity_id=item["id"], body=item, no_overwrite=False)
        else:
            replace_entity(session=session, call=call, entity_id=item["id"], body=item)
        return None

    return _each(session, items, one)


def batch_update(*, session: Session, call: Call, items: Any, no_overwrite: bool) -> BatchResult:
    items = _batch(items, "entities")

    def one(item: Any) -> None:
        if not isinstance(item, dict) or "id" not in item:
            raise BadRequestData("every entity of the batch needs an id")
        res = append_attributes(session=session, call=call, entity_id=item["id"], body=item, no_overwrite=no_overwrite)
        if res.not_updated:
            names = ", ".join(call.resolver.compact(a) for a, _ in res.not_updated)
            raise Partial(f"attributes {names} of entity {item['id']} exist and noOverwrite was asked: kept")

    return _each(session, items, one)


def batch_merge(*, session: Session, call: Call, items: Any) -> BatchResult:
    items = _batch(items, "entities")

    def one(item: Any) -> None:
        if not isinstance(item, dict) or "id" not in item:
            raise BadRequestData("every entity of the batch needs an id")
        merge_entity(session=session, call=call, entity_id=item["id"], body=item)

    return _each(session, items, one)


def batch_delete(*, session: Session, call: Call, items: Any) -> BatchResult:
    items = _batch(items, "entity ids")

    def one(item: Any) -> None:
        if not isinstance(item, str):
            raise BadRequestData("a batch delete is a JSON array of entity ids (strings)")
        delete_entity(session=session, call=call, entity_id=item)

    return _each(session, items, one)


# ------------------------------------------------------------------------------------------------ queries


@dataclass
class Query:
    """An entity query, its names already expanded."""

    types: Any = None  # a parsed type expression (twin.query)
    ids: list[str] | None = None
    id_pattern: str | None = None
    attrs: list[str] | None = None  # attribute IRIs
    q: Any = None
    geo: Any = None
    scope: Any = None
    limit: int = 20
    offset: int = 0
    count: bool = False


def _tree_key(node: Any) -> Any:
    """A hashable key of a parsed query tree that tells apart what compiles differently: a term's plan too
    (it holds the values expanded with the caller's @context, which a term's equality leaves out)."""
    from citybase.twin import query as ql

    if isinstance(node, ql.And | ql.Or):
        return (type(node).__name__, tuple(_tree_key(c) for c in node.children))
    if isinstance(node, ql.Term):
        return ("Term", node.path, node.op, node.value, node.plan)
    if isinstance(node, ql.ScopeIs):
        return ("ScopeIs", node.text, node.regex.pattern if node.regex is not None else None)
    return (type(node).__name__, node)


_SQL_CACHE: OrderedDict[tuple[Any, str], Any] = OrderedDict()
_SQL_CACHE_SIZE = 1024
_sql_lock = threading.Lock()


def _where_of(node: Any, dialect: str) -> Any:
    """``twin.query.to_sql`` of a tree over the entities' columns, built once per distinct tree: a SQLAlchemy
    clause is immutable and may be shared, and building one of a ``q`` on SQLite costs ≈ 10 ms (its chains of
    ``json_each``), more than running it. The most recently used 1,024 are kept."""
    from citybase.twin import query as ql

    try:
        key = (_tree_key(node), dialect)
        hash(key)
    except TypeError:  # an unhashable literal somewhere: built every time
        key = None
    if key is not None:
        with _sql_lock:
            clause = _SQL_CACHE.get(key)
            if clause is not None:
                _SQL_CACHE.move_to_end(key)
                return clause
    clause = ql.to_sql(node, dialect=dialect, attrs=TwinEntity.attrs, types=TwinEntity.types, scopes=TwinEntity.scopes)
    if key is not None:
        with _sql_lock:
            _SQL_CACHE[key] = clause
            while len(_SQL_CACHE) > _SQL_CACHE_SIZE:
                _SQL_CACHE.popitem(last=False)
    return clause


def query_entities(*, session: Session, call: Call, query: Query) -> tuple[list[dict[str, Any]], int | None]:
    """Entities matching a query, in creation order, and their total when asked."""
    from citybase.twin import geoquery

    repo = TwinRepository(session)
    if not repo.tenant_exists(call.tenant):
        raise NonexistentTenant(f"there is no tenant {call.tenant!r}; a tenant is created by its first write")
    where: list[Any] = []
    if query.types is not None:
        where.append(_where_of(query.types, repo.dialect))
    if query.ids:
        where.append(TwinEntity.entity_id.in_(query.ids))
    if query.id_pattern:
        where.append(repo.id_matches(query.id_pattern))
    if query.attrs:
        where.append(repo.has_any_attribute(query.attrs))
    if query.q is not None:
        where.append(_where_of(query.q, repo.dialect))
    if query.scope is not None:
        where.append(_where_of(query.scope, repo.dialect))
    refine = None
    if query.geo is not None:
        gq = query.geo
        on_location = gq.geoproperty == LOCATION
        if on_location:  # the indexed geometry: exact on PostGIS, a bounding-box prefilter on SQLite
            where.append(geoquery.geo_to_sql(gq, dialect=repo.dialect, geom=repo.geom_column(),
                                             bbox=(TwinEntity.min_lon, TwinEntity.min_lat, TwinEntity.max_lon,
                                                   TwinEntity.max_lat)))
        if not (on_location and repo.pg):

            def refine(row: TwinEntity) -> bool:
                return geoquery.geo_matches(gq, doc_of(row))
    rows, total = repo.query(call.tenant, where, limit=query.limit, offset=query.offset, count=query.count,
                             refine=refine)
    return [doc_of(r) for r in rows], total


# ------------------------------------------------------------------------------------------------ discovery


def _list_id(kind: str, names: Sequence[str]) -> str:
    return f"urn:ngsi-ld:{kind}:{hashlib.sha1('|'.join(names).encode()).hexdigest()[:16]}"  # noqa: S324 - an id


def entity_types(*, session: Session, call: Call, details: bool) -> Any:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    r = call.resolver
    rows = repo.types(call.tenant)
    if not details:
        names = [r.compact(t) for t, _ in rows]
        return {"id": _list_id("EntityTypeList", names), "type": "EntityTypeList", "typeList": names}
    return [{"id": t, "type": "EntityType", "typeName": r.compact(t), "attributeNames": sorted(r.compact(a) for a in attrs)}
            for t, attrs in rows]


def entity_type(*, session: Session, call: Call, name: str) -> dict[str, Any]:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    r = call.resolver
    iri = r.expand(check_name(name, "type"))
    kinds: dict[str, set[str]] = {}
    for a, kind, t, _n in repo.attribute_rows(call.tenant):
        if t == iri:
            kinds.setdefault(a, set()).add(kind)
    n = repo.count_of_type(call.tenant, iri)
    if not n:
        raise ResourceNotFound(f"there is no entity of type {name}")
    return {"id": iri, "type": "EntityTypeInfo", "typeName": r.compact(iri), "entityCount": n,
            "attributeDetails": [{"id": a, "type": "Attribute", "attributeName": r.compact(a),
                                  "attributeTypes": sorted(k)} for a, k in sorted(kinds.items())]}


def attributes(*, session: Session, call: Call, details: bool) -> Any:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    r = call.resolver
    info = _attribute_info(repo, call)
    if not details:
        names = sorted(r.compact(a) for a in info)
        return {"id": _list_id("AttributeList", names), "type": "AttributeList", "attributeList": names}
    # details=true lists each attribute as id, type, attributeName and typeNames (§5.7.8); the counts and kinds
    # are those of one attribute's own retrieval (§5.7.10)
    return [{k: v for k, v in _attribute_body(a, d, r).items() if k not in ("attributeCount", "attributeTypes")}
            for a, d in sorted(info.items())]


def attribute(*, session: Session, call: Call, name: str) -> dict[str, Any]:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    iri = call.resolver.expand(check_name(name))
    info = _attribute_info(repo, call)
    if iri not in info:
        raise ResourceNotFound(f"no entity has an attribute {name}")
    return _attribute_body(iri, info[iri], call.resolver)


def _attribute_info(repo: TwinRepository, call: Call) -> dict[str, dict[str, Any]]:
    """Per attribute IRI: its kinds (Property, …), the entity types that have it, and how many instances."""
    info: dict[str, dict[str, Any]] = {}
    for a, kind, t, n in repo.attribute_rows(call.tenant):
        d = info.setdefault(a, {"kinds": set(), "types": set(), "count": 0})
        d["kinds"].add(kind)
        d["types"].add(t)
        d["count"] += n
    return info


def _attribute_body(iri: str, d: dict[str, Any], r: Resolver) -> dict[str, Any]:
    return {"id": iri, "type": "Attribute", "attributeName": r.compact(iri), "attributeCount": d["count"],
            "attributeTypes": sorted(d["kinds"]), "typeNames": sorted(r.compact(t) for t in d["types"])}


# ------------------------------------------------------------------------------------------------ temporal


@dataclass
class TimeQuery:
    timerel: str | None = None  # before, after, between
    time_at: datetime | None = None
    end_time_at: datetime | None = None
    timeproperty: str = "observedAt"
    last_n: int | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        if self.timerel is None:
            return None, None
        if self.timerel == "before":
            return None, self.time_at
        if self.timerel == "after":
            return self.time_at, None
        return self.time_at, self.end_time_at


def temporal_entity(*, session: Session, call: Call, entity_id: str, attrs: Sequence[str] | None, tq: TimeQuery,
                    dataset_ids: Sequence[str] | None = None) -> tuple[dict[str, Any], list[TwinHistory]]:
    """The entity's identity and its history rows (ResourceNotFound when it never existed)."""
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    check_uri(entity_id, "the entity id")
    row = repo.get(call.tenant, entity_id)
    if row is None and not repo.history_exists(call.tenant, entity_id):
        raise ResourceNotFound(f"there is no entity {entity_id} and no history of one")
    start, end = tq.bounds()
    hist = repo.history(call.tenant, entity_id, attrs=attrs, time_column=tq.timeproperty, start=start, end=end,
                        last_n=tq.last_n, dataset_ids=dataset_ids)
    if tq.timeproperty == "deletedAt":  # by the time of their deletion: the deletions only
        hist = [h for h in hist if h.deleted]
    ident = doc_of(row) if row is not None else {"id": entity_id, "type": hist[0].types if hist else [], "attrs": {}}
    return ident, hist


def temporal_candidates(*, session: Session, call: Call, query: Query, tq: TimeQuery) -> list[str]:
    """The ids of entities (alive or not) whose history matches the temporal query's type/id/attrs filters."""
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    docs, _ = query_entities(session=session, call=call, query=Query(
        types=query.types, ids=query.ids, id_pattern=query.id_pattern, attrs=query.attrs, q=query.q, geo=query.geo,
        scope=query.scope, limit=100_000, offset=0))
    return [d["id"] for d in docs]


def create_temporal(*, session: Session, call: Call, body: Any) -> bool:
    """Temporal entity create/update: each instance of each attribute appended to the history (and the latest
    one to the entity). True when the entity was created."""
    if not isinstance(body, dict) or "id" not in body:
        raise BadRequestData("the body must be a temporal entity with an id")
    repo = TwinRepository(session)
    r = call.resolver
    _tenant(repo, call, write=True)
    eid = check_uri(body["id"], "id")
    row = repo.lock(call.tenant, eid)
    types = expand_types(body["type"], r) if "type" in body else None
    if row is None and types is None:
        raise BadRequestData("a new temporal entity needs a type")
    doc = doc_of(row) if row is not None else {"id": eid, "type": types, "attrs": {}}
    if types:
        doc["type"] = list(dict.fromkeys([*doc["type"], *types]))
    written: dict[str, list[dict[str, Any]]] = {}
    attrs = dict(doc["attrs"])
    for name, raw in body.items():
        if name in ("@context", "id", "type", "scope", "createdAt", "modifiedAt"):
            continue
        iri = r.expand(check_name(name))
        items = raw if isinstance(raw, list) else [raw]
        instances = [expand_instance(i, iri, r, call.now) for i in items]
        written[iri] = instances
        latest = max(instances, key=lambda i: i.get("observedAt") or "")
        attrs[iri] = _put_instance(list(attrs.get(iri, [])), latest)
    doc["attrs"] = attrs
    bbox, geojson = _location(doc)
    created = row is None
    if created:
        doc["createdAt"] = call.now
        row = repo.add(call.tenant, doc, call.at, bbox, geojson)
    else:
        repo.save(row, doc, call.at, bbox, geojson)
    repo.append_history(_history_rows(call.tenant, doc, written, call.at))
    _changed(session, call, doc, "create" if created else "update", list(written))
    return created


def delete_temporal(*, session: Session, call: Call, entity_id: str) -> None:
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    check_uri(entity_id, "the entity id")
    row = repo.lock(call.tenant, entity_id)
    n = repo.delete_history(call.tenant, entity_id)
    if row is None and not n:
        raise ResourceNotFound(f"there is no temporal entity {entity_id}")
    if row is not None:
        doc = doc_of(row)
        repo.remove(row)
        _changed(session, call, doc, "delete", list(doc["attrs"]))


def delete_temporal_attribute(*, session: Session, call: Call, entity_id: str, attr: str, dataset_id: str | None,
                              delete_all: bool) -> None:
    check_uri(entity_id, "the entity id")
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    iri = call.resolver.expand(check_name(attr))
    n = repo.delete_history(call.tenant, entity_id, iri, dataset_id=dataset_id, all_datasets=delete_all)
    if not n:
        raise ResourceNotFound(f"temporal entity {entity_id} has no attribute {attr}")


def update_temporal_instance(*, session: Session, call: Call, entity_id: str, attr: str, instance_id: str,
                             body: Any) -> None:
    check_uri(entity_id, "the entity id")
    check_uri(instance_id, "the instance id")
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    iri = call.resolver.expand(check_name(attr))
    row = repo.history_row(call.tenant, entity_id, iri, instance_id)
    if row is None:
        raise ResourceNotFound(f"temporal entity {entity_id} has no instance {instance_id} of {attr}")
    fragment = body.get(attr, body.get(iri, body)) if isinstance(body, dict) else body
    if isinstance(fragment, list):
        fragment = fragment[0] if fragment else {}
    inst = _merge_instance(row.instance, fragment if isinstance(fragment, dict) else {"value": fragment}, iri, call)
    row.instance = inst
    row.number = numeric(inst.get("value"))
    row.observed_at = parse_time(inst["observedAt"], "observedAt") if inst.get("observedAt") else row.observed_at
    session.flush()


def delete_temporal_instance(*, session: Session, call: Call, entity_id: str, attr: str, instance_id: str) -> None:
    check_uri(entity_id, "the entity id")
    check_uri(instance_id, "the instance id")
    repo = TwinRepository(session)
    _tenant(repo, call, write=False)
    iri = call.resolver.expand(check_name(attr))
    if not repo.delete_history(call.tenant, entity_id, iri, instance_id=instance_id):
        raise ResourceNotFound(f"temporal entity {entity_id} has no instance {instance_id} of {attr}")


# ------------------------------------------------------------------------------------------------ contexts


def stored_context(*, session: Session, url: str) -> dict[str, Any] | None:
    row = TwinRepository(session).context_by_url(url)
    return json.loads(row.body) if row is not None else None


def keep_context(*, session: Session, url: str, body: dict[str, Any], kind: str = "Cached") -> None:
    repo = TwinRepository(session)
    if repo.context_by_url(url) is None:
        repo.add_context(url, kind, body, datetime.now(UTC))


def host_context(*, session: Session, body: Any, base_url: str) -> str:
    """Keep a posted @context (``Hosted``) and return its URL here."""
    if not isinstance(body, dict) or "@context" not in body:
        raise InvalidRequest("the body must be a JSON object with an @context member")
    from citybase.twin.ldcontext import check_context

    check_context(body["@context"])
    cid = uuid.uuid4().hex
    url = f"{base_url.rstrip('/')}/ngsi-ld/v1/jsonldContexts/{cid}"
    TwinRepository(session).add_context(url, "Hosted", {"@context": body["@context"]}, datetime.now(UTC), cid)
    return url


def contexts(*, session: Session, kind: str | None) -> list[Any]:
    return TwinRepository(session).contexts(kind)


def context(*, session: Session, cid: str) -> Any:
    row = TwinRepository(session).context(cid)
    if row is None:
        raise ResourceNotFound(f"there is no @context {cid} here")
    return row


def delete_context(*, session: Session, cid: str) -> str:
    repo = TwinRepository(session)
    row = repo.context(cid)
    if row is None:
        raise ResourceNotFound(f"there is no @context {cid} here")
    url = row.url
    repo.remove_context(row)
    invalidate(session, "twin.contexts")  # every process drops its resolvers of it once this commits
    return url


def load_contexts(*, session: Session, files: dict[str, dict[str, Any]]) -> int:
    """Preload contexts (URL -> document) as ``Cached``; existing ones are replaced."""
    repo = TwinRepository(session)
    now = datetime.now(UTC)
    for url, doc in files.items():
        old = repo.context_by_url(url)
        if old is not None:
            repo.remove_context(old)
        repo.add_context(url, "Cached", doc, now)
    invalidate(session, "twin.contexts")  # running processes see the new documents
    return len(files)


def is_geo_attribute(iri: str) -> bool:
    return iri in GEO_IRIS


ID_PATTERN_MAX = 256


def check_id_pattern(pattern: str) -> str:
    if len(pattern) > ID_PATTERN_MAX:
        raise BadRequestData(f"idPattern is longer than {ID_PATTERN_MAX} characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise BadRequestData(f"idPattern is not a regular expression: {exc}") from None
    return pattern
