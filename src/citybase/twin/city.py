"""The city in the twin: the spatial base (areas, buildings) and the incident loop projected as NGSI-LD
entities, so that an NGSI-LD client can geo-query the grids, filter buildings or follow incidents with the
standard API instead of citybase's own.

The names are Smart Data Models' where a model exists (``Building``; ``IssueReporting`` of
dataModel.IssueTracking for incidents), schema.org's where Smart Data Models itself defers to it and has no
model (``AdministrativeArea``, ``containedInPlace``), and citybase's (``https://citybase.dev/ns/``) for the
rest. They are one flat @context shipped in the package (``contexts/citybase-city.jsonld``), served at
``/ngsi-ld/v1/jsonldContexts/citybase-city`` and answered for ``CITY_URL`` without fetching, so a client
sends ``Link: <CITY_URL>`` and reads the short names. A flat context has one IRI per term: Smart Data Models
uses ``category`` for a building's use and for an issue's category with two IRIs, so the issue's is the
term ``issueCategory`` here (same IRI as Smart Data Models'; a client with their context reads ``category``).

The source of truth stays in its domain; the twin holds a copy kept current: ``sync_city`` writes every
area, building and incident (only what changed, through the batch path), ``on_incident_event`` follows each
``citybase.ops.incident.*`` event by reading the incident's current state (so events arriving twice or out of
order write the same thing). An incident carries no personal data: no reporter, no phone, no free text
(descriptions and addresses in words are what a reporter wrote; the twin is read by every staff role and,
when a city opens it, anonymously), only its category, state, department, times and place."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.errors import NotFound
from citybase.geo import service as geo
from citybase.kernel.consumers import Reject
from citybase.kernel.domain import ConsumerSpec
from citybase.ops.catalogue import service as catalogue
from citybase.ops.workflow import service as workflow
from citybase.registry import service as registry
from citybase.twin import query as ql
from citybase.twin import service
from citybase.twin.errors import NonexistentTenant
from citybase.twin.ldcontext import CITY_URL, ContextStore, Resolver
from citybase.twin.representation import expand_entity, iso

log = logging.getLogger("citybase.twin.city")

AREA, BUILDING, ISSUE = "AdministrativeArea", "Building", "IssueReporting"
INCIDENT_EVENTS = "citybase.ops.incident.*"
BATCH = 500  # entities per batch: one read of the existing ones, one batch upsert
PAGE = 1000  # buildings or incidents read from their domain at a time
NULL = "urn:ngsi-ld:null"

# IssueReporting's resolutionStatus (Open, Assigned, InProgress, Unassigned, Closed) for each workflow state;
# the state itself is kept in ``status``.
RESOLUTION = {"received": "Unassigned", "registered": "Open", "dispatched": "Assigned", "handling": "InProgress",
              "verifying": "InProgress", "closed": "Closed", "rejected": "Closed", "merged": "Closed"}
# every attribute the projection may write, per type: one it no longer writes (a department unset) is deleted
ATTRIBUTES = {
    AREA: ("name", "areaCode", "level", "areaKm2", "location", "containedInPlace"),
    BUILDING: ("buildingCode", "address", "category", "floorsAboveGround", "location", "containedInPlace"),
    ISSUE: ("reportId", "categoryCode", "issueCategory", "subCategoryCode", "subCategory", "status",
            "resolutionStatus", "departmentId", "department", "priority", "channel", "dateCreated", "dateModified",
            "dueDate", "repeatCount", "location", "refGrid", "refBuilding"),
}
Progress = Callable[[str, int, int], None]  # (what, done, total)


def area_id(code: str) -> str:
    return f"urn:ngsi-ld:{AREA}:{code}"


def building_id(code: str) -> str:
    return f"urn:ngsi-ld:{BUILDING}:{code}"


def issue_id(code: str) -> str:
    return f"urn:ngsi-ld:{ISSUE}:{code}"


@cache
def city_resolver() -> Resolver:
    """The resolver of the city's @context (its terms, then the core context), computed once per process."""
    store = ContextStore(lambda url: None, lambda url, doc: None, fetch=False)
    return store.resolver(CITY_URL)


def city_call(tenant: str = "") -> service.Call:
    """The call the projection writes with: the tenant ("" is the default one) and the city's terms."""
    return service.Call(tenant=tenant, resolver=city_resolver())


# ------------------------------------------------------------------------------------------ the entities


def _p(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def _rel(target: str, object_type: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target, "objectType": object_type}


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def area_entity(area: Any, parent_code: str | None) -> dict[str, Any]:
    """An area (district, street, community or grid) as an AdministrativeArea, inside its parent."""
    body: dict[str, Any] = {
        "id": area_id(area.code), "type": AREA, "name": _p(area.name), "areaCode": _p(area.code),
        "level": _p(area.level), "areaKm2": _p(round(area.area_km2, 4), unitCode="KMK"),
        "location": {"type": "GeoProperty", "value": json.loads(area.geometry)}}
    if parent_code:
        body["containedInPlace"] = _rel(area_id(parent_code), AREA)
    return body


def _address(text: str, district: str | None) -> dict[str, str]:
    """A PostalAddress from an address in words: what comes before the district's name is the region
    (上海市), the district is the locality, the rest the street address (徐虹大道21弄1号)."""
    out = {"addressCountry": "CN"}
    if district and district in text:
        region, _, street = text.partition(district)
        if region:
            out["addressRegion"] = region
        out["addressLocality"] = district
        out["streetAddress"] = street
    else:
        out["streetAddress"] = text
    return out


def building_entity(b: Any, grid_code: str, district: str | None) -> dict[str, Any]:
    """A building as Smart Data Models' Building (address, category, floors, location) inside its grid."""
    return {"id": building_id(b.code), "type": BUILDING, "buildingCode": _p(b.code),
            "address": _p(_address(b.address, district)), "category": _p([b.use]),
            "floorsAboveGround": _p(b.floors), "location": _point(b.lon, b.lat),
            "containedInPlace": _rel(area_id(grid_code), AREA)}


def issue_entity(inc: Any, *, grid_code: str | None, building_code: str | None, category: Any,
                 department: Any) -> dict[str, Any]:
    """An incident as Smart Data Models' IssueReporting, without personal data (see the module doc)."""
    body: dict[str, Any] = {
        "id": issue_id(inc.code), "type": ISSUE, "reportId": _p(inc.code), "subCategoryCode": _p(inc.category_code),
        "status": _p(str(inc.status)), "resolutionStatus": _p(RESOLUTION.get(str(inc.status), "Open")),
        "priority": _p(inc.priority), "channel": _p(inc.channel), "dateCreated": _p(iso(inc.created_at)),
        "dateModified": _p(iso(inc.updated_at)), "repeatCount": _p(inc.repeat_count),
        "location": _point(inc.lon, inc.lat)}
    if category is not None:
        body.update(categoryCode=_p(category.major), issueCategory=_p(category.major_name),
                    subCategory=_p(category.name))
    if department is not None:
        body.update(departmentId=_p(department.code), department=_p(department.name))
    if inc.deadline_at is not None:
        body["dueDate"] = _p(iso(inc.deadline_at))
    if grid_code:
        body["refGrid"] = _rel(area_id(grid_code), AREA)
    if building_code:
        body["refBuilding"] = _rel(building_id(building_code), BUILDING)
    return body


# ------------------------------------------------------------------------------------------ writing


def _plain(value: Any) -> Any:
    """A stored instance without its system times, to compare what was written with what would be."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and "type" in value and ("createdAt" in value or "modifiedAt" in value):
        return {k: (v if k in ("value", "object") else _plain(v)) for k, v in value.items()
                if k not in ("createdAt", "modifiedAt")}
    return value


def _existing(session: Session, call: service.Call, ids: list[str]) -> dict[str, dict[str, Any]]:
    try:
        docs, _ = service.query_entities(session=session, call=call, query=service.Query(ids=ids, limit=len(ids)))
    except NonexistentTenant:  # the first write creates it
        return {}
    return {d["id"]: d for d in docs}


def _changes(body: dict[str, Any], old: dict[str, Any] | None, call: service.Call) -> dict[str, Any] | None:
    """What to send for an entity: all of it when new, the changed attributes (and ``urn:ngsi-ld:null`` for
    attributes no longer written) when it exists, None when the twin holds it as it is."""
    if old is None:
        return body
    r = call.resolver
    new = expand_entity(body, r, call.now)["attrs"]
    item: dict[str, Any] = {"id": body["id"], "type": body["type"]}
    for term in body:
        if term not in ("id", "type") and _plain(old["attrs"].get(r.expand(term))) != _plain(new[r.expand(term)]):
            item[term] = body[term]
    for term in ATTRIBUTES[body["type"]]:
        if term not in body and r.expand(term) in old["attrs"]:
            item[term] = NULL
    return item if len(item) > 2 else None


def write(*, session: Session, call: service.Call, bodies: list[dict[str, Any]]) -> dict[str, int]:
    """Upsert entities of the projection in batches (new ones created, changed attributes updated, the rest
    left alone, so the history holds real changes only); counts created, updated, unchanged and failed.
    Never commits."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    for i in range(0, len(bodies), BATCH):
        chunk = bodies[i:i + BATCH]
        old = _existing(session, call, [b["id"] for b in chunk])
        items = []
        for body in chunk:
            item = _changes(body, old.get(body["id"]), call)
            if item is None:
                counts["unchanged"] += 1
            else:
                items.append(item)
        if not items:
            continue
        res = service.batch_upsert(session=session, call=call, items=items, update_only=True)
        for eid, err in res.errors:
            log.warning("twin city: %s not written: %s", eid, err.detail)
        counts["failed"] += len(res.errors)
        counts["created"] += len(res.created)
        counts["updated"] += len(res.success) - len(res.created)
    return counts


def _delete_missing(session: Session, call: service.Call, kind: str, keep: set[str]) -> int:
    """Delete the projection's entities of ``kind`` whose source is gone (an area or building removed by a
    reload of the spatial base)."""
    types = ql.parse_type_query(kind, call.resolver.expand)
    gone: list[str] = []
    offset = 0
    while True:
        try:
            docs, _ = service.query_entities(session=session, call=call, query=service.Query(
                types=types, id_pattern=f"^urn:ngsi-ld:{kind}:", limit=PAGE, offset=offset))
        except NonexistentTenant:
            return 0
        gone.extend(d["id"] for d in docs if d["id"] not in keep)
        if len(docs) < PAGE:
            break
        offset += PAGE
    for i in range(0, len(gone), BATCH):
        service.batch_delete(session=session, call=call, items=gone[i:i + BATCH])
    return len(gone)


# ------------------------------------------------------------------------------------------ the sync


def _buildings(session: Session) -> Iterator[Any]:
    page = 1
    while True:
        rows, _ = geo.list_buildings(session=session, page=page, page_size=PAGE)
        yield from rows
        if len(rows) < PAGE:
            return
        page += 1


def _incidents(session: Session) -> Iterator[Any]:
    after = 0
    while True:
        rows = workflow.incidents_after(session=session, after_id=after, limit=PAGE)
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1].id


class _Names:
    """What an incident's entity names beside its own row: area codes, building codes, categories and
    departments (read once for a sync, or one at a time for an event)."""

    def __init__(self, session: Session, *, areas: dict[int, Any] | None = None,
                 buildings: dict[int, str] | None = None, everything: bool = False) -> None:
        self.session = session
        self.areas = areas if areas is not None else geo.areas_by_id(session=session)
        self.buildings = buildings or {}
        self.categories = {c.code: c for c in catalogue.list_categories(session=session, include_inactive=True)} \
            if everything else {}
        self.departments = {d.id: d for d in registry.list_departments(session=session)} if everything else {}
        self.everything = everything

    def building(self, building_id: int | None) -> str | None:
        if building_id is None:
            return None
        if building_id not in self.buildings and not self.everything:
            try:
                self.buildings[building_id] = geo.get_building(session=self.session, building_id=building_id).code
            except NotFound:
                return None
        return self.buildings.get(building_id)

    def category(self, code: str) -> Any:
        if code not in self.categories and not self.everything:
            self.categories[code] = catalogue.find_category(session=self.session, code=code)
        return self.categories.get(code)

    def department(self, department_id: int | None) -> Any:
        if department_id is None:
            return None
        if department_id not in self.departments and not self.everything:
            try:
                self.departments[department_id] = registry.get_department_by_id(session=self.session,
                                                                                department_id=department_id)
            except NotFound:
                return None
        return self.departments.get(department_id)

    def issue(self, inc: Any) -> dict[str, Any]:
        grid = self.areas.get(inc.grid_id)
        return issue_entity(inc, grid_code=grid.code if grid else None, building_code=self.building(inc.building_id),
                            category=self.category(inc.category_code), department=self.department(inc.main_department_id))


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + v


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def sync_city(*, session: Session, call: service.Call | None = None,
              progress: Progress | None = None) -> dict[str, int]:
    """Bring the twin's copy of the city up to date: every area, building and incident written (only what
    changed), and areas and buildings no longer in the spatial base deleted. ``call`` names the tenant and
    must carry ``city_resolver()`` (``city_call(tenant)``; the default tenant when None); ``progress`` is told
    (what, done, total) as it goes. Returns how many of each type it saw and what it did with them (created,
    updated, unchanged, deleted, failed). Never commits: the caller's transaction holds it all."""
    call = call or city_call()
    tell = progress or (lambda what, done, total: None)
    counts: dict[str, int] = {AREA: 0, BUILDING: 0, ISSUE: 0, "created": 0, "updated": 0, "unchanged": 0,
                              "deleted": 0, "failed": 0}
    areas = {a.id: a for a in geo.list_areas(session=session)}
    bodies = [area_entity(a, areas[a.parent_id].code if a.parent_id in areas else None) for a in areas.values()]
    tell(AREA, 0, len(bodies))
    _add(counts, write(session=session, call=call, bodies=bodies))
    counts[AREA] = len(bodies)
    tell(AREA, len(bodies), len(bodies))
    counts["deleted"] += _delete_missing(session, call, AREA, {b["id"] for b in bodies})

    total = geo.building_count(session=session)
    district = next((a.name for a in areas.values() if a.level == "district"), None)
    codes: dict[int, str] = {}
    kept: set[str] = set()
    for chunk in _batches(_building_bodies(session, areas, district, codes), BATCH):
        _add(counts, write(session=session, call=call, bodies=chunk))
        kept.update(b["id"] for b in chunk)
        counts[BUILDING] += len(chunk)
        tell(BUILDING, counts[BUILDING], total)
    counts["deleted"] += _delete_missing(session, call, BUILDING, kept)

    names = _Names(session, areas=areas, buildings=codes, everything=True)
    tell(ISSUE, 0, 0)  # their number is known once read
    for chunk in _batches((names.issue(i) for i in _incidents(session)), BATCH):
        _add(counts, write(session=session, call=call, bodies=chunk))
        counts[ISSUE] += len(chunk)
        tell(ISSUE, counts[ISSUE], counts[ISSUE])
    return counts


def _building_bodies(session: Session, areas: dict[int, Any], district: str | None,
                     codes: dict[int, str]) -> Iterator[dict[str, Any]]:
    for b in _buildings(session):
        codes[b.id] = b.code
        yield building_entity(b, areas[b.grid_id].code, district)


# ------------------------------------------------------------------------------------------ following ops


def project_incident(*, session: Session, incident_id: int, call: service.Call | None = None) -> dict[str, int]:
    """Write one incident's current state into the twin (what changed only). Never commits."""
    inc = workflow.get_incident(session=session, incident_id=incident_id)
    return write(session=session, call=call or city_call(), bodies=[_Names(session).issue(inc)])


def on_incident_event(session: Session, delivery: Any, runtime: Any, *, tenant: str = "") -> None:
    """twin-city-incidents: a step of the incident loop (``citybase.ops.incident.*``) upserts the incident's
    IssueReporting entity from its current state; an event naming no incident, or one that does not exist,
    is kept aside (Reject)."""
    incident_id = delivery.event.data.get("incident_id") if isinstance(delivery.event.data, dict) else None
    if not isinstance(incident_id, int) or isinstance(incident_id, bool):
        raise Reject(f"{delivery.event.subject} carries no incident_id")
    try:
        counts = project_incident(session=session, incident_id=incident_id, call=city_call(tenant))
    except NotFound:
        raise Reject(f"{delivery.event.subject}: there is no incident #{incident_id}") from None
    if counts["failed"]:
        raise RuntimeError(f"incident #{incident_id} could not be written into the twin (see the log)")


CONSUMERS = (ConsumerSpec("twin-city-incidents", INCIDENT_EVENTS, on_incident_event),)
"""The durable consumers of the projection, for the twin's descriptor."""
