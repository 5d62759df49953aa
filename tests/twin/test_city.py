"""The city in the twin: the small demo city's areas and buildings, and incidents made through the ops API,
read back with the standard NGSI-LD API (geoQ, q, the temporal API) under the city's @context, on both
engines, each test module in a tenant of its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.geo.models import Area, Building
from citybase.kernel.consumers import Consumer
from citybase.ops.workflow.models import Incident
from citybase.storage.db import make_sessionmaker, transaction
from citybase.twin import city as projection
from citybase.twin.ldcontext import CITY_URL

LINK = f'<{CITY_URL}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
SDM_BUILDING = "https://smartdatamodels.org/dataModel.Building/"


@pytest.fixture(scope="module")
def synced(city) -> tuple[str, dict[str, int]]:
    """The demo city synced into a tenant of this module: the tenant and the counts of the first sync."""
    tenant = f"city{uuid.uuid4().hex[:8]}"
    with transaction(make_sessionmaker(city.engine)) as session:
        counts = projection.sync_city(session=session, call=projection.city_call(tenant))
    return tenant, counts


def _get(client, city, tenant: str, path: str, *, link: bool = True, **params):
    headers = {**city.auth("analyst"), "NGSILD-Tenant": tenant}
    if link:
        headers["Link"] = LINK
    return client.get("/ngsi-ld/v1" + path, params=params, headers=headers)


def _building(city, k: int = 0) -> Building:
    with Session(city.engine) as s:
        return s.scalars(select(Building).order_by(Building.id).offset(k * 37).limit(1)).one()


def _quiet_building(city, category: str) -> Building:
    """A building with no incident of ``category`` within ~1 km, so a new report there is not merged into
    another test's as a duplicate."""
    with Session(city.engine) as s:
        taken = [(i.lon, i.lat) for i in s.scalars(select(Incident).where(Incident.category_code == category))]
        for b in s.scalars(select(Building).order_by(Building.id.desc())):
            if all(abs(b.lon - lon) > 0.01 or abs(b.lat - lat) > 0.01 for lon, lat in taken):
                return b
    raise AssertionError(f"every building has an incident of {category} nearby")


def _chain(city, grid_id: int) -> list[Area]:
    """The grid and its community, street and district."""
    out = []
    with Session(city.engine) as s:
        area = s.get(Area, grid_id)
        while area is not None:
            out.append(area)
            area = s.get(Area, area.parent_id) if area.parent_id else None
    return out


def test_every_area_and_building_becomes_an_entity(city, synced):
    _, counts = synced
    with Session(city.engine) as s:
        areas = s.scalar(select(func.count()).select_from(Area))
        buildings = s.scalar(select(func.count()).select_from(Building))
    assert counts["AdministrativeArea"] == areas and counts["Building"] == buildings
    assert counts["created"] == areas + buildings + counts["IssueReporting"] and counts["failed"] == 0


def test_a_point_inside_a_grid_finds_that_grid_and_the_areas_around_it(client, city, synced):
    tenant, _ = synced
    b = _building(city, 3)
    point = json.dumps([b.lon, b.lat])
    r = _get(client, city, tenant, "/entities", type="AdministrativeArea", georel="intersects", geometry="Point",
             coordinates=point, q='level=="grid"')
    assert r.status_code == 200, r.text
    grid = _chain(city, b.grid_id)[0]
    assert [e["id"] for e in r.json()] == [f"urn:ngsi-ld:AdministrativeArea:{grid.code}"]
    found = r.json()[0]
    assert found["type"] == "AdministrativeArea" and found["areaCode"]["value"] == grid.code
    assert found["name"]["value"] == grid.name and found["location"]["value"]["type"] == "MultiPolygon"
    community = _chain(city, b.grid_id)[1]
    assert found["containedInPlace"]["object"] == f"urn:ngsi-ld:AdministrativeArea:{community.code}"
    every = _get(client, city, tenant, "/entities", type="AdministrativeArea", georel="intersects",
                 geometry="Point", coordinates=point)
    assert {e["areaCode"]["value"]: e["level"]["value"] for e in every.json()} == \
        {a.code: a.level for a in _chain(city, b.grid_id)}


def test_buildings_are_filtered_by_their_smart_data_model_attributes(client, city, synced):
    tenant, _ = synced
    with Session(city.engine) as s:
        tall_shops = s.scalar(select(func.count()).select_from(Building).where(
            Building.floors > 20, Building.use == "commercial"))
        b = _building(city, 5)
        in_grid = s.scalar(select(func.count()).select_from(Building).where(Building.grid_id == b.grid_id))
        grid_code = s.get(Area, b.grid_id).code
    assert tall_shops > 0
    r = _get(client, city, tenant, "/entities", type="Building", q='floorsAboveGround>20;category=="commercial"',
             count="true", limit=1000)
    assert r.status_code == 200, r.text
    assert int(r.headers["NGSILD-Results-Count"]) == len(r.json()) == tall_shops
    assert all(e["floorsAboveGround"]["value"] > 20 and e["category"]["value"] == ["commercial"] for e in r.json())
    r = _get(client, city, tenant, "/entities", type="Building", count="true", limit=0,
             q=f'containedInPlace=="urn:ngsi-ld:AdministrativeArea:{grid_code}"')
    assert int(r.headers["NGSILD-Results-Count"]) == in_grid
    one = _get(client, city, tenant, f"/entities/urn:ngsi-ld:Building:{b.code}").json()
    assert one["address"]["value"]["streetAddress"] and b.address.endswith(one["address"]["value"]["streetAddress"])
    assert one["address"]["value"]["addressLocality"] == "徐汇区"
    assert one["location"]["value"] == {"type": "Point", "coordinates": [b.lon, b.lat]}


def test_the_names_are_smart_data_models_iris_and_the_context_is_served_here(client, city, synced):
    tenant, _ = synced
    b = _building(city, 7)
    plain = _get(client, city, tenant, f"/entities/urn:ngsi-ld:Building:{b.code}", link=False).json()
    assert plain["type"] == SDM_BUILDING + "Building"
    assert plain[SDM_BUILDING + "floorsAboveGround"]["value"] == b.floors
    assert "https://smartdatamodels.org/address" in plain
    doc = client.get("/ngsi-ld/v1/jsonldContexts/citybase-city", headers=city.auth("analyst"))
    assert doc.status_code == 200 and doc.json()["@context"]["Building"] == SDM_BUILDING + "Building"
    listed = client.get("/ngsi-ld/v1/jsonldContexts", headers=city.auth("analyst")).json()
    assert CITY_URL in listed
    kept = client.delete("/ngsi-ld/v1/jsonldContexts/citybase-city", headers=city.auth("dataofficer"))
    assert kept.status_code == 400


def test_a_second_sync_writes_only_what_changed_and_drops_what_is_gone(client, city, synced):
    tenant, first = synced
    ghost = {"id": "urn:ngsi-ld:Building:GONE-1", "type": "Building", "floorsAboveGround": {"type": "Property", "value": 3}}
    r = client.post("/ngsi-ld/v1/entities", content=json.dumps(ghost),
                    headers={**city.auth("dataofficer"), "NGSILD-Tenant": tenant, "Link": LINK,
                             "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    with transaction(make_sessionmaker(city.engine)) as session:
        again = projection.sync_city(session=session, call=projection.city_call(tenant))
    assert again["created"] == again["updated"] == again["failed"] == 0
    assert again["unchanged"] == first["AdministrativeArea"] + first["Building"] + again["IssueReporting"]
    assert again["deleted"] == 1
    assert _get(client, city, tenant, "/entities/urn:ngsi-ld:Building:GONE-1").status_code == 404


def test_an_attribute_its_domain_no_longer_has_is_deleted_from_the_entity(client, city):
    tenant = f"del{uuid.uuid4().hex[:8]}"
    with Session(city.engine) as s:
        street = s.scalars(select(Area).where(Area.level == "street").limit(1)).one()
        parent = s.get(Area, street.parent_id)
    call = projection.city_call(tenant)
    with transaction(make_sessionmaker(city.engine)) as session:
        made = projection.write(session=session, call=call, bodies=[projection.area_entity(street, parent.code)])
    with transaction(make_sessionmaker(city.engine)) as session:
        cut = projection.write(session=session, call=call, bodies=[projection.area_entity(street, None)])
    assert made["created"] == 1 and cut["updated"] == 1
    got = _get(client, city, tenant, f"/entities/urn:ngsi-ld:AdministrativeArea:{street.code}").json()
    assert "containedInPlace" not in got and got["areaCode"]["value"] == street.code


# ------------------------------------------------------------------------------------------ incidents


@pytest.fixture
def follower(client, city) -> Iterator[tuple[str, Consumer]]:
    """The projection's consumer of incident events on the app's bus, writing into a tenant of its own."""
    tenant = f"ops{uuid.uuid4().hex[:8]}"
    consumer = Consumer(f"twin-city-test-{uuid.uuid4().hex[:8]}", client.app.state.bus, projection.INCIDENT_EVENTS,
                        client.app.state.sessions,
                        lambda session, delivery: projection.on_incident_event(session, delivery, None, tenant=tenant))
    yield tenant, consumer
    consumer.sub.close()


def _drain(consumer: Consumer) -> None:
    while consumer.run_once(timeout=0.2):
        pass


def _handler(client, city, department_id: int) -> dict[str, str]:
    admin = city.auth("admin")
    u = client.post("/api/v1/users", json={"username": f"tc-{uuid.uuid4().hex[:8]}", "display_name": "处置员",
                                           "roles": ["handler"], "department_id": department_id}, headers=admin).json()
    tok = client.post(f"/api/v1/users/{u['id']}/tokens", json={}, headers=admin).json()["token"]
    return {"Authorization": f"Bearer {tok}"}


def test_an_incident_and_its_steps_follow_into_the_twin_without_personal_data(client, city, follower):
    tenant, consumer = follower
    b = _quiet_building(city, "02002")
    phone = f"139{uuid.uuid4().int % 10**8:08d}"  # a caller of its own: the same caller again would be a repeat
    r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"), json={
        "description": f"我叫张三丰，电话{phone}，楼道灯坏了好几天", "category_code": "02002",
        "building_id": b.id, "reporter_name": "张三丰", "reporter_phone": phone})
    assert r.status_code == 201, r.text
    inc = r.json()["incident"]
    assert inc["status"] == "dispatched"
    _drain(consumer)
    eid = f"urn:ngsi-ld:IssueReporting:{inc['code']}"
    got = _get(client, city, tenant, f"/entities/{eid}")
    assert got.status_code == 200, got.text
    issue = got.json()
    grid = _chain(city, b.grid_id)[0]
    assert issue["type"] == "IssueReporting" and issue["reportId"]["value"] == inc["code"]
    assert issue["status"]["value"] == "dispatched" and issue["resolutionStatus"]["value"] == "Assigned"
    assert issue["subCategoryCode"]["value"] == "02002" and issue["categoryCode"]["value"] == "02"
    assert issue["departmentId"]["value"] and issue["department"]["value"] == inc["main_department_name"]
    assert issue["refGrid"]["object"] == f"urn:ngsi-ld:AdministrativeArea:{grid.code}"
    assert issue["refBuilding"]["object"] == f"urn:ngsi-ld:Building:{b.code}"
    assert issue["location"]["value"]["coordinates"] == [b.lon, b.lat]
    text = json.dumps(issue, ensure_ascii=False)
    for secret in (phone, "**", "张三丰", "楼道灯", "电话"):  # "**": not even a masked copy
        assert secret not in text

    # a step of the workflow (the department accepts) is followed: the state is updated, the history grows
    accepted = client.post(f"/api/v1/ops/incidents/{inc['id']}/accept", json={},
                           headers=_handler(client, city, inc["main_department_id"]))
    assert accepted.status_code == 200, accepted.text
    _drain(consumer)
    issue = _get(client, city, tenant, f"/entities/{eid}").json()
    assert issue["status"]["value"] == "handling" and issue["resolutionStatus"]["value"] == "InProgress"
    history = _get(client, city, tenant, f"/temporal/entities/{eid}", attrs="status").json()
    assert [i["value"] for i in history["status"]] == ["dispatched", "handling"]
    near = _get(client, city, tenant, "/entities", type="IssueReporting", georel="near;maxDistance==50",
                geometry="Point", coordinates=json.dumps([b.lon, b.lat]), q='status=="handling"')
    assert eid in [e["id"] for e in near.json()]


def test_events_naming_no_incident_are_kept_aside(client, city, follower):
    tenant, consumer = follower
    bus = client.app.state.bus
    bus.publish("citybase.ops.incident.receive", {"code": "X"})
    bus.publish("citybase.ops.incident.receive", {"incident_id": 987_654_321})
    _drain(consumer)
    reasons = [d.reason for d in bus.dead_letters() if d.consumer == consumer.consumer]
    assert len(reasons) == 2
    assert "carries no incident_id" in reasons[0] and "no incident #987654321" in reasons[1]
