"""Which subscriptions an entity change fires, decided in memory: each subscription compiled once (its type
expressions, idPattern, q, scopeQ and geoQ parsed), and per tenant an index from entity id, entity type and
watched attribute to the subscriptions that can match, so a change looks at a handful of candidates, not at
every subscription of the tenant. The index may over-select, never under-select: every candidate is then
evaluated exactly (:func:`selects`, :func:`trigger_of`).

What the change was is read from the entity as it is now (``twin.events`` carries names, not values): an
attribute the change named that the entity no longer has was deleted; one whose every instance was created
at the change's time was created; any other was updated."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from citybase.twin import geoquery
from citybase.twin import query as ql
from citybase.twin.ldcontext import Resolver
from citybase.twin.representation import VALUE_KEY, compact_entity, links, load_linked, with_linked
from citybase.twin.subscriptions.payload import MEMBERS, TOKEN, parse_geoq

NULL = "urn:ngsi-ld:null"


@dataclass(frozen=True)
class Selector:
    """One member of ``entities``: a type expression, and an id or an idPattern."""

    types: ql.QNode
    type_iris: frozenset[str]  # every type the expression names (the index's keys)
    id: str | None = None
    pattern: re.Pattern[str] | None = None

    def holds(self, doc: dict[str, Any]) -> bool:
        if self.id is not None and doc["id"] != self.id:
            return False
        if self.id is None and self.pattern is not None and not self.pattern.search(doc["id"]):
            return False
        return ql.matches(self.types, doc)


@dataclass(frozen=True)
class Compiled:
    """A subscription ready to be matched."""

    pk: int
    sub_id: str
    selectors: tuple[Selector, ...]  # empty: any entity (watchedAttributes alone)
    watched: frozenset[str] | None
    triggers: frozenset[str]
    q: ql.QNode | None = None
    scope: ql.QNode | None = None
    geo: geoquery.GeoQuery | None = None
    active: bool = True
    expires_at: datetime | None = None
    throttling: float | None = None
    periodic: bool = False

    def live(self, now: datetime) -> bool:
        return self.active and (self.expires_at is None or self.expires_at > now)


def unquoted(text: str) -> str:
    """A q as clients write it in a URL, percent-encoded (name=="Eiffel%20Tower"), read as the query it encodes."""
    return unquote(text) if "%" in text else text


def compile_subscription(pk: int, spec: dict[str, Any], *, active: bool, expires_at: datetime | None,
                         throttling: float | None, resolve: Callable[[Any], Resolver]) -> Compiled:
    """Parse what a stored subscription's matching needs (its names are IRIs already, but for ``q``, read in
    its own @context through ``resolve``)."""
    selectors = []
    for e in spec.get("entities") or ():
        types = ql.parse_type_query(e["type"], lambda name: name)
        selectors.append(Selector(types, frozenset(TOKEN.findall(e["type"])), e.get("id"),
                                  re.compile(e["idPattern"]) if e.get("idPattern") else None))
    q = spec.get("q")
    return Compiled(
        pk=pk, sub_id=spec["id"], selectors=tuple(selectors),
        watched=frozenset(spec["watchedAttributes"]) if spec.get("watchedAttributes") else None,
        triggers=frozenset(spec.get("notificationTrigger") or ()),
        q=ql.parse_q(unquoted(q["text"]), resolve(q["context"]).expand) if q else None,
        scope=ql.parse_scope_query(spec["scopeQ"]) if spec.get("scopeQ") else None,
        geo=parse_geoq(spec["geoQ"]) if spec.get("geoQ") else None,
        active=active, expires_at=expires_at, throttling=throttling, periodic="timeInterval" in spec)


@dataclass
class TenantIndex:
    """The change-driven subscriptions of one tenant, by entity id, type and (without entities) watched
    attribute; ``revision`` is the tenant's subscription revision it was built from."""

    revision: int
    by_id: dict[str, list[Compiled]] = field(default_factory=dict)
    by_type: dict[str, list[Compiled]] = field(default_factory=dict)
    by_attr: dict[str, list[Compiled]] = field(default_factory=dict)
    size: int = 0

    @classmethod
    def of(cls, revision: int, subs: Iterable[Compiled]) -> TenantIndex:
        idx = cls(revision)
        for sub in subs:
            if sub.periodic:
                continue
            idx.size += 1
            if not sub.selectors:
                for attr in sub.watched or ():
                    idx.by_attr.setdefault(attr, []).append(sub)
            for sel in sub.selectors:
                if sel.id is not None:
                    idx.by_id.setdefault(sel.id, []).append(sub)
                else:
                    for t in sel.type_iris:
                        idx.by_type.setdefault(t, []).append(sub)
        return idx

    def candidates(self, entity_id: str, types: Iterable[str], attrs: Iterable[str]) -> list[Compiled]:
        """Every subscription that may match a change of this entity, once each."""
        seen: dict[int, Compiled] = {}
        for sub in self.by_id.get(entity_id, ()):
            seen.setdefault(sub.pk, sub)
        for t in types:
            for sub in self.by_type.get(t, ()):
                seen.setdefault(sub.pk, sub)
        for a in attrs:
            for sub in self.by_attr.get(a, ()):
                seen.setdefault(sub.pk, sub)
        return list(seen.values())


class IndexCache:
    """The process's indexes, one per tenant, each checked against the tenant's revision before use and
    rebuilt when it is behind; :meth:`forget` drops them all (``Domain.caches``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantIndex] = {}

    def get(self, tenant: str, revision: int, build: Callable[[], TenantIndex]) -> TenantIndex:
        with self._lock:
            idx = self._tenants.get(tenant)
        if idx is not None and idx.revision == revision:
            return idx
        idx = build()
        with self._lock:
            self._tenants[tenant] = idx
        return idx

    def forget(self) -> None:
        with self._lock:
            self._tenants.clear()


# ------------------------------------------------------------------------------------------ a change


@dataclass(frozen=True)
class Change:
    """One ``entity_changed`` event, its attributes sorted by what happened to them."""

    op: str  # create, update, replace, delete
    at: str  # the change's modifiedAt
    attrs: frozenset[str]
    created: frozenset[str] = frozenset()
    updated: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()
    lost: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # attribute → its instances deleted


def with_lost_instances(change: Change, doc: dict[str, Any],
                        latest: dict[str, list[tuple[dict[str, Any], bool]]]) -> Change:
    """The change with the instances (datasetIds) its updated attributes lost, from each attribute's latest
    instances before the change (``latest``: attribute → [(instance, deleted)]): a deletion of some instances
    of an attribute is an attributeDeleted, not an attributeUpdated."""
    lost: dict[str, list[dict[str, Any]]] = {}
    for a in change.updated:
        now = {i.get("datasetId") for i in doc["attrs"].get(a, [])}
        gone = [inst for inst, deleted in latest.get(a, []) if not deleted and inst.get("datasetId") not in now]
        if gone:
            lost[a] = gone
    if not lost:
        return change
    return dataclasses.replace(change, updated=change.updated - lost.keys(), lost=lost)


def classify(op: str, attrs: Iterable[str], doc: dict[str, Any] | None, at: str) -> Change:
    """Sort the change's attributes (see the module doc); ``doc`` is the entity now (None once deleted)."""
    names = frozenset(attrs)
    if op == "create":
        return Change(op, at, names, created=names)
    if op == "delete" or doc is None:
        return Change(op, at, names, deleted=names)
    created, updated, deleted = set(), set(), set()
    for a in names:
        instances = doc["attrs"].get(a)
        if not instances:
            deleted.add(a)
        elif all(str(i.get("createdAt", "")) >= at for i in instances):
            created.add(a)
        else:
            updated.add(a)
    return Change(op, at, names, frozenset(created), frozenset(updated), frozenset(deleted))


def trigger_of(sub: Compiled, change: Change) -> str | None:
    """The notificationTrigger this change fires for the subscription (its triggerReason), or None."""
    relevant = change.attrs if sub.watched is None else change.attrs & sub.watched
    t = sub.triggers
    if change.op == "create":
        if "entityCreated" in t:
            return "entityCreated"
        return "attributeCreated" if "attributeCreated" in t and relevant else None
    if change.op == "delete":
        if "entityDeleted" in t:
            return "entityDeleted"
        return "attributeDeleted" if "attributeDeleted" in t and relevant else None  # its attributes went too
    for reason, group in (("attributeCreated", change.created), ("attributeUpdated", change.updated),
                          ("attributeDeleted", change.deleted | change.lost.keys())):
        if reason in t and group & relevant:
            return reason
    if "entityUpdated" in t and (relevant or (not change.attrs and sub.watched is None)):
        return "entityUpdated"
    return None


def selects(sub: Compiled, doc: dict[str, Any], *, deleted: bool = False) -> bool:
    """Whether the entity is one the subscription follows: its entities (any member), and unless the entity
    is gone (nothing left to test) its q, scopeQ and geoQ."""
    if sub.selectors and not any(sel.holds(doc) for sel in sub.selectors):
        return False
    if deleted:
        return True
    if sub.q is not None and not ql.matches(sub.q, doc):
        return False
    if sub.scope is not None and not ql.matches(sub.scope, doc):
        return False
    return sub.geo is None or geoquery.geo_matches(sub.geo, doc)


# ------------------------------------------------------------------------------------------ what is sent

PREVIOUS = {kind: "previous" + key[0].upper() + key[1:] for kind, key in VALUE_KEY.items()}


def shown_entity(spec: dict[str, Any], doc: dict[str, Any], change: Change | None, r: Resolver,
                 previous: dict[str, list[dict[str, Any]]] | None = None, reason: str | None = None) -> dict[str, Any]:
    """The entity as the notification carries it: in the subscription's @context and format, only
    ``notification.attributes`` when given. ``previous`` holds the instances of the changed and deleted attributes
    as they were before the change. A deleted attribute is shown with its own type and ``urn:ngsi-ld:null`` as its
    value (a LanguageProperty as ``{"@none": "urn:ngsi-ld:null"}``), its createdAt, modifiedAt and deletedAt with
    sysAttrs; a deleted entity is its id, type and deletedAt (and its createdAt and modifiedAt with sysAttrs),
    with its attributes as deleted ones when the subscription shows changes or watched them for
    attributeDeleted. showChanges adds each changed or deleted instance's previous value."""
    n = spec["notification"]
    wanted = n.get("attributes")
    old = previous or {}
    if change is not None and change.op == "delete":
        types = [r.compact(t) for t in doc.get("type", [])]
        out: dict[str, Any] = {"id": doc["id"], "type": types[0] if len(types) == 1 else types}
        if n["sysAttrs"]:
            created = [i["createdAt"] for v in old.values() for i in v if isinstance(i.get("createdAt"), str)]
            modified = [i["modifiedAt"] for v in old.values() for i in v if isinstance(i.get("modifiedAt"), str)]
            if created:
                out["createdAt"] = min(created)
            if modified or created:
                out["modifiedAt"] = max(modified or created)
        out["deletedAt"] = change.at
        shown: frozenset[str] = frozenset()
        if n["showChanges"]:
            shown = change.deleted
        elif reason == "attributeDeleted":
            shown = change.deleted & frozenset(spec.get("watchedAttributes") or change.deleted)
        for a in sorted(shown):
            if wanted is None or a in wanted:
                out[r.compact(a)] = _deleted(old.get(a), n, change.at, r)
        return out
    if spec.get("datasetId"):  # only the instances of these datasets (@none: those without one)
        keep = spec["datasetId"]
        doc = {**doc, "attrs": {a: kept for a, v in doc["attrs"].items()
                                if (kept := [i for i in v if i.get("datasetId", "@none") in keep])}}
    pick, omit = n.get("pick"), n.get("omit")
    if pick:
        wanted = [x for x in pick if x not in MEMBERS]
    out = compact_entity(doc, r, fmt=n["format"], sys_attrs=n["sysAttrs"], attrs=wanted, lang=spec.get("lang"),
                         pick={x if x in MEMBERS else r.compact(x) for x in pick} if pick else None,
                         omit={x if x in MEMBERS else r.compact(x) for x in omit} if omit else None)
    if change is not None:
        for a in sorted(change.deleted):
            if wanted is None or a in wanted:
                out[r.compact(a)] = _deleted(old.get(a), n, change.at, r)
        for a, gone in sorted(change.lost.items()):  # instances deleted: shown after the ones left
            if (wanted is None or a in wanted) and r.compact(a) in out:
                name = r.compact(a)
                for inst in gone:
                    if n["format"] == "keyValues":
                        cur = out[name]
                        data = dict(cur["dataset"]) if isinstance(cur, dict) and "dataset" in cur else {"@none": cur}
                        out[name] = {"dataset": {**data, inst["datasetId"] if inst.get("datasetId") else "@none": NULL}}
                    else:
                        item = _deleted([inst], n, change.at, r)
                        cur = out[name]
                        out[name] = [*(cur if isinstance(cur, list) else [cur]), item]
    if previous and n["format"] != "keyValues":
        for iri, before in previous.items():
            name = r.compact(iri)
            if change is not None and iri in change.deleted:
                continue
            if name in out and before:
                out[name] = _with_previous(out[name], doc["attrs"].get(iri) or [], before, r)
    return out


def joined(spec: dict[str, Any], doc: dict[str, Any], shown: dict[str, Any], r: Resolver,
           fetch: Callable[[list[str]], dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The notification's data for one entity: with ``notification.join`` (flat or inline, to joinLevel) the
    entities its shown Relationships point at, appended after it (flat) or in an ``entity`` member of each
    Relationship (inline), in the subscription's format."""
    n = spec["notification"]
    join, depth = n.get("join"), n.get("joinLevel", 1)
    if join not in ("flat", "inline") or "deletedAt" in shown:
        return [shown]
    root = {**doc, "attrs": {a: v for a, v in doc["attrs"].items() if r.compact(a) in shown}}
    known = load_linked([root], depth, fetch)

    def one(d: dict[str, Any]) -> dict[str, Any]:
        return compact_entity(d, r, fmt=n["format"], sys_attrs=n["sysAttrs"], lang=spec.get("lang"))

    if join == "flat":
        out, seen, frontier = [shown], {doc["id"]}, [root]
        for _ in range(depth):
            nxt = []
            for d in frontier:
                for _, t in links(d):
                    if t in known and t not in seen:
                        seen.add(t)
                        out.append(one(known[t]))
                        nxt.append(known[t])
            frontier = nxt
        return out

    def inline(d: dict[str, Any], view: dict[str, Any], level: int) -> dict[str, Any]:
        if level <= 0:
            return view
        view = dict(view)
        for iri, instances in d["attrs"].items():
            name = r.compact(iri)
            for i, inst in enumerate(instances):
                target = inst.get("object") if inst.get("type") == "Relationship" else None
                if name not in view or not isinstance(target, str) or target not in known:
                    continue
                linked = inline(known[target], one(known[target]), level - 1)
                view[name] = with_linked(view[name], i, linked, n["format"])
        return view

    return [inline(root, shown, depth)]


def _previous_value(inst: dict[str, Any], r: Resolver) -> Any:
    value = inst.get(VALUE_KEY[inst["type"]])
    if inst["type"] == "VocabProperty":
        value = [r.compact(v) for v in value] if isinstance(value, list) else r.compact(value)
    return value


def _deleted(before: list[dict[str, Any]] | None, n: dict[str, Any], at: str, r: Resolver) -> Any:
    """A deleted attribute in a notification (each instance it had, with datasetId)."""
    if n["format"] == "keyValues":
        return NULL
    out = []
    instances = before or [{"type": "Property"}]
    if len(instances) > 1:  # the whole attribute went: shown once, by its default instance
        instances = [next((i for i in instances if not i.get("datasetId")), instances[0])]
    for inst in instances:
        kind = inst.get("type") if inst.get("type") in VALUE_KEY else "Property"
        item: dict[str, Any] = {"type": kind, VALUE_KEY[kind]: {"@none": NULL} if kind == "LanguageProperty" else NULL}
        if inst.get("datasetId"):
            item["datasetId"] = inst["datasetId"]
        if n["showChanges"] and VALUE_KEY[kind] in inst:
            item[PREVIOUS[kind]] = _previous_value(inst, r)
        if n["sysAttrs"]:
            for member in ("createdAt", "modifiedAt"):
                if isinstance(inst.get(member), str):
                    item[member] = inst[member]
            item["deletedAt"] = at
        out.append(item)
    return out[0]


def _with_previous(shown: Any, now: list[dict[str, Any]], old: list[dict[str, Any]], r: Resolver) -> Any:
    items = shown if isinstance(shown, list) else [shown]
    out = []
    for item, inst in zip(items, now, strict=False):
        before = next((o for o in old if o.get("datasetId") == inst.get("datasetId")), None)
        if before is None or before.get("type") not in PREVIOUS:
            out.append(item)
            continue
        value = _previous_value(before, r)
        item = item if isinstance(item, dict) and not _is_geojson(item) else {"value": item}
        out.append({**item, PREVIOUS[before["type"]]: value})
    return out[0] if not isinstance(shown, list) else out


def _is_geojson(item: dict[str, Any]) -> bool:
    return "coordinates" in item and "type" in item and "value" not in item
