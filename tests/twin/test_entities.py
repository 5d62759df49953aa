"""The NGSI-LD context-information API on both engines: what a client of the twin relies on."""

from __future__ import annotations

import json

from tests.twin.conftest import CTX, EX, building

ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def _err(r, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json", r.headers["content-type"]
    body = r.json()
    assert body["type"] == ERR + kind, body
    assert body["detail"]
    return body


def test_create_and_retrieve_in_every_representation(ngsi):
    r = ngsi.post("/entities", building(1, owner={"type": "Relationship", "object": "urn:ngsi-ld:Org:XH"}))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:B1"

    e = ngsi.get("/entities/urn:ngsi-ld:Building:B1").json()
    assert e["type"] == "Building"  # compacted with the caller's context (Link header)
    assert e["height"] == {"type": "Property", "value": 10, "unitCode": "MTR"}
    assert e["name"]["value"] == "徐汇1号楼"
    assert e["owner"] == {"type": "Relationship", "object": "urn:ngsi-ld:Org:XH"}
    assert e["location"]["value"]["coordinates"] == [121.431, 31.19]
    assert "createdAt" not in e

    kv = ngsi.get("/entities/urn:ngsi-ld:Building:B1", options="keyValues").json()
    assert kv["height"] == 10 and kv["owner"] == "urn:ngsi-ld:Org:XH" and kv["location"]["type"] == "Point"
    concise = ngsi.get("/entities/urn:ngsi-ld:Building:B1", options="concise").json()
    assert concise["height"] == {"value": 10, "unitCode": "MTR"} and concise["name"] == "徐汇1号楼"
    assert concise["owner"] == {"object": "urn:ngsi-ld:Org:XH"}
    sys = ngsi.get("/entities/urn:ngsi-ld:Building:B1", options="sysAttrs").json()
    assert sys["createdAt"].endswith("Z") and sys["height"]["modifiedAt"].endswith("Z")

    # without the caller's context, names come back as full IRIs
    ngsi.linked = False
    plain = ngsi.get("/entities/urn:ngsi-ld:Building:B1")
    assert plain.json()["type"] == EX + "Building" and EX + "height" in plain.json()
    assert plain.headers["link"].startswith(f"<{CTX}>")
    ld = ngsi.get("/entities/urn:ngsi-ld:Building:B1", headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"] == "application/ld+json" and ld.json()["@context"] == CTX


def test_concise_input_and_multiple_datasets(ngsi):
    body = {"id": "urn:ngsi-ld:Sensor:S1", "type": "Sensor", "temperature": [
        {"value": 21.5, "observedAt": "2026-12-01T08:00:00Z"},
        {"value": 22.0, "datasetId": "urn:ngsi-ld:Dataset:backup", "observedAt": "2026-12-01T08:00:00Z"}],
        "name": "探头一"}
    assert ngsi.post("/entities", body).status_code == 201
    e = ngsi.get("/entities/urn:ngsi-ld:Sensor:S1").json()
    assert e["name"] == {"type": "Property", "value": "探头一"}
    assert sorted(i.get("datasetId", "-") for i in e["temperature"]) == ["-", "urn:ngsi-ld:Dataset:backup"]
    r = ngsi.send("DELETE", "/entities/urn:ngsi-ld:Sensor:S1/attrs/temperature",
                  params={"datasetId": "urn:ngsi-ld:Dataset:backup"})
    assert r.status_code == 204, r.text
    assert ngsi.get("/entities/urn:ngsi-ld:Sensor:S1").json()["temperature"]["value"] == 21.5
    _err(ngsi.send("DELETE", "/entities/urn:ngsi-ld:Sensor:S1/attrs/temperature",
                   params={"datasetId": "urn:ngsi-ld:Dataset:backup"}), 404, "ResourceNotFound")


def test_attribute_operations(ngsi):
    ngsi.post("/entities", building(2))
    # append: a new attribute, and noOverwrite keeps the existing one
    r = ngsi.post("/entities/urn:ngsi-ld:Building:B2/attrs?options=noOverwrite",
                  {"height": {"type": "Property", "value": 99}, "floors": {"type": "Property", "value": 30}})
    assert r.status_code == 207, r.text
    assert r.json()["updated"] == ["floors"] and r.json()["notUpdated"][0]["attributeName"] == "height"
    e = ngsi.get("/entities/urn:ngsi-ld:Building:B2").json()
    assert e["height"]["value"] == 20 and e["floors"]["value"] == 30
    # update (NGSI-LD v1.8): what is given is written, existing or not; urn:ngsi-ld:null deletes
    r = ngsi.send("PATCH", "/entities/urn:ngsi-ld:Building:B2/attrs",
                  {"height": {"type": "Property", "value": 21}, "extra": {"type": "Property", "value": 1}})
    assert r.status_code == 204, r.text
    assert ngsi.get("/entities/urn:ngsi-ld:Building:B2").json()["extra"]["value"] == 1
    r = ngsi.send("PATCH", "/entities/urn:ngsi-ld:Building:B2/attrs", {"extra": {"type": "Property", "value": "urn:ngsi-ld:null"}})
    assert r.status_code == 204 and "extra" not in ngsi.get("/entities/urn:ngsi-ld:Building:B2").json()
    # partial update of one attribute keeps its other members
    r = ngsi.send("PATCH", "/entities/urn:ngsi-ld:Building:B2/attrs/height", {"value": 22})
    assert r.status_code == 204, r.text
    r = ngsi.send("PATCH", "/entities/urn:ngsi-ld:Building:B2/attrs/height", {"unitCode": "MTR"})
    assert ngsi.get("/entities/urn:ngsi-ld:Building:B2").json()["height"] == {"type": "Property", "value": 22,
                                                                              "unitCode": "MTR"}
    # merge-patch: change one, add one, delete one with urn:ngsi-ld:null
    r = ngsi.send("PATCH", "/entities/urn:ngsi-ld:Building:B2",
                  {"height": {"value": 23}, "color": {"type": "Property", "value": "灰"}, "floors": "urn:ngsi-ld:null"})
    assert r.status_code == 204, r.text
    e = ngsi.get("/entities/urn:ngsi-ld:Building:B2").json()
    assert e["height"]["value"] == 23 and e["color"]["value"] == "灰" and "floors" not in e
    # replace the whole entity
    r = ngsi.send("PUT", "/entities/urn:ngsi-ld:Building:B2", {"type": "Building", "height": {"type": "Property", "value": 5}})
    assert r.status_code == 204, r.text
    e = ngsi.get("/entities/urn:ngsi-ld:Building:B2").json()
    assert set(e) == {"id", "type", "height"}
    assert ngsi.send("DELETE", "/entities/urn:ngsi-ld:Building:B2").status_code == 204
    _err(ngsi.get("/entities/urn:ngsi-ld:Building:B2"), 404, "ResourceNotFound")


def test_bad_requests_get_the_standard_errors(ngsi):
    created = ngsi.post("/entities", building(3))
    assert created.status_code == 201
    # Location in its usual spelling (clients such as the ETSI suite look it up case-sensitively)
    assert b"Location" in [k for k, _ in created.headers.raw]
    _err(ngsi.post("/entities", building(3)), 409, "AlreadyExists")
    _err(ngsi.post("/entities", {"id": "not a uri", "type": "Building"}), 400, "BadRequestData")
    _err(ngsi.post("/entities", {"id": "urn:ngsi-ld:Building:X"}), 400, "BadRequestData")  # no type
    _err(ngsi.post("/entities", {**building(4), "height": {"type": "Property"}}), 400, "BadRequestData")
    _err(ngsi.post("/entities", {**building(5), "owner": {"type": "Relationship", "object": "no uri"}}), 400,
         "BadRequestData")
    bad_geo = {**building(6), "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": ["x"]}}}
    _err(ngsi.post("/entities", bad_geo), 400, "BadRequestData")
    r = ngsi.client.post("/ngsi-ld/v1/entities", content=b'{"id": "urn:x:1", "type": "T", "v": NaN}',
                         headers={**ngsi.headers, "Content-Type": "application/json"})
    _err(r, 400, "InvalidRequest")
    r = ngsi.client.post("/ngsi-ld/v1/entities", content=b"{not json", headers={**ngsi.headers, "Content-Type": "application/json"})
    _err(r, 400, "InvalidRequest")
    r = ngsi.client.post("/ngsi-ld/v1/entities", content=b"<x/>", headers={**ngsi.headers, "Content-Type": "text/xml"})
    assert r.status_code == 415 and r.headers["content-type"] == "application/json"
    # no Content-Type at all: a body that is no JSON is the first thing wrong (400), a JSON one needs its type (415)
    plain = {k: v for k, v in ngsi.headers.items() if k.lower() != "content-type"}
    r = ngsi.client.request("PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:B3/attrs", content=b'{"a":,}',
                            headers=plain)
    _err(r, 400, "InvalidRequest")
    assert "Content-Type" in r.json()["detail"]
    r = ngsi.client.request("PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:B3/attrs",
                            content=b'{"height": {"type": "Property", "value": 3}}', headers=plain)
    assert r.status_code == 415
    # ld+json needs its @context in the body; application/json must not carry one
    r = ngsi.client.post("/ngsi-ld/v1/entities", content=json.dumps(building(7)),
                         headers={**ngsi.headers, "Content-Type": "application/ld+json"})
    _err(r, 400, "BadRequestData")
    r = ngsi.post("/entities", {**building(8), "@context": CTX}, ld=False)
    _err(r, 400, "BadRequestData")
    r = ngsi.get("/entities/urn:ngsi-ld:Building:B3", headers={"Accept": "text/html"})
    assert r.status_code == 406
    _err(ngsi.get("/entities", type="Building", limit="x"), 400, "BadRequestData")
    _err(ngsi.get("/entities", type="Building", q="height>>"), 400, "BadRequestData")


def test_an_unreachable_context_is_ld_context_not_available(ngsi):
    body = {**building(9), "@context": ["http://127.0.0.1:9/nothing.jsonld", CTX]}
    _err(ngsi.post("/entities", body), 504, "LdContextNotAvailable")
    _err(ngsi.post("/entities", {**building(9), "@context": ["https://example.org/c.jsonld", 7]}), 400, "BadRequestData")


def test_tenants_are_isolated(ngsi):
    assert ngsi.post("/entities", building(10)).status_code == 201
    own = ngsi.tenant
    ngsi.tenant = own + "x"
    _err(ngsi.get("/entities/urn:ngsi-ld:Building:B10"), 404, "NonexistentTenant")
    assert ngsi.post("/entities", building(11)).status_code == 201  # the first write creates the tenant
    assert [e["id"] for e in ngsi.get("/entities", type="Building").json()] == ["urn:ngsi-ld:Building:B11"]
    ngsi.tenant = own
    assert [e["id"] for e in ngsi.get("/entities", type="Building").json()] == ["urn:ngsi-ld:Building:B10"]


def test_who_may_call_the_twin(client, city):
    r = client.get("/ngsi-ld/v1/entities", params={"type": "Building"})
    _err(r, 401, "Unauthorized")
    r = client.post("/ngsi-ld/v1/entities", content=json.dumps(building(12)),
                    headers={**city.auth("analyst"), "Content-Type": "application/json"})
    _err(r, 403, "Forbidden")  # staff read the twin; admins and data officers write it
    r = client.get("/ngsi-ld/v1/types", headers=city.auth("analyst"))
    assert r.status_code == 200
    _err(client.get("/ngsi-ld/v1/types", headers=city.auth("citizen")), 403, "Forbidden")


def test_batch_operations_report_each_entity(ngsi):
    r = ngsi.post("/entityOperations/create", [building(20), building(21), {"id": "bad", "type": "Building"}])
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["success"] == ["urn:ngsi-ld:Building:B20", "urn:ngsi-ld:Building:B21"]
    assert body["errors"][0]["entityId"] == "bad" and body["errors"][0]["error"]["type"] == ERR + "BadRequestData"
    r = ngsi.post("/entityOperations/create", [building(22), building(23)])
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Building:B22", "urn:ngsi-ld:Building:B23"]
    # upsert: one new (created), one replaced
    r = ngsi.post("/entityOperations/upsert", [building(23, height={"type": "Property", "value": 1}), building(24)])
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Building:B24"]
    assert ngsi.get("/entities/urn:ngsi-ld:Building:B23").json()["height"]["value"] == 1
    r = ngsi.post("/entityOperations/upsert", [building(24)])
    assert r.status_code == 204
    r = ngsi.post("/entityOperations/update", [{"id": "urn:ngsi-ld:Building:B20", "type": "Building",
                                                "height": {"type": "Property", "value": 7}},
                                               {"id": "urn:ngsi-ld:Building:B99", "type": "Building",
                                                "height": {"type": "Property", "value": 7}}])
    assert r.status_code == 207 and r.json()["success"] == ["urn:ngsi-ld:Building:B20"]
    assert r.json()["errors"][0]["error"]["type"] == ERR + "ResourceNotFound"
    r = ngsi.send("POST", "/entityOperations/delete", ["urn:ngsi-ld:Building:B20", "urn:ngsi-ld:Building:B98"], ld=False)
    assert r.status_code == 207 and r.json()["success"] == ["urn:ngsi-ld:Building:B20"]
    _err(ngsi.get("/entities/urn:ngsi-ld:Building:B20"), 404, "ResourceNotFound")


def test_queries(ngsi):
    ngsi.post("/entityOperations/create", [building(n) for n in range(30, 40)] + [
        {"id": "urn:ngsi-ld:Sensor:S30", "type": "Sensor", "temperature": {"type": "Property", "value": 30},
         "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [121.50, 31.25]}}}])
    ids = lambda r: [e["id"] for e in r.json()]  # noqa: E731
    assert len(ids(ngsi.get("/entities", type="Building", limit=100))) == 10
    r = ngsi.get("/entities", type="Building", q="height>=350;height<380", count="true")
    assert ids(r) == ["urn:ngsi-ld:Building:B35", "urn:ngsi-ld:Building:B36", "urn:ngsi-ld:Building:B37"]
    assert r.headers["ngsild-results-count"] == "3"
    assert ids(ngsi.get("/entities", type="Building", q='name=="徐汇31号楼"')) == ["urn:ngsi-ld:Building:B31"]
    assert ids(ngsi.get("/entities", type="Building,Sensor", q="temperature>10")) == ["urn:ngsi-ld:Sensor:S30"]
    assert ids(ngsi.get("/entities", type="Building", idPattern=".*:B3[0-1]$")) == ["urn:ngsi-ld:Building:B30",
                                                                                  "urn:ngsi-ld:Building:B31"]
    assert ids(ngsi.get("/entities", type="Building,Sensor", id="urn:ngsi-ld:Building:B33,urn:ngsi-ld:Sensor:S30")) == [
        "urn:ngsi-ld:Building:B33", "urn:ngsi-ld:Sensor:S30"]
    page = ngsi.get("/entities", type="Building", limit=3, offset=3, count="true")
    assert ids(page) == [f"urn:ngsi-ld:Building:B{n}" for n in (33, 34, 35)] and page.headers["ngsild-results-count"] == "10"
    shown = ngsi.get("/entities", type="Building", attrs="height", limit=1).json()[0]
    assert set(shown) == {"id", "type", "height"}
    picked = ngsi.get("/entities", type="Building", pick="id,name", limit=1).json()[0]
    assert set(picked) == {"id", "name"}
    # within 300 m of B30 (121.46, 31.19): B30 itself; 0.001° of longitude is about 95 m there
    near = ngsi.get("/entities", type="Building", georel="near;maxDistance==300", geometry="Point",
                    coordinates="[121.46,31.19]")
    assert ids(near) == [f"urn:ngsi-ld:Building:B{n}" for n in (30, 31, 32, 33)]
    box = "[[[121.49,31.24],[121.51,31.24],[121.51,31.26],[121.49,31.26],[121.49,31.24]]]"
    assert ids(ngsi.get("/entities", georel="within", geometry="Polygon", coordinates=box)) == ["urn:ngsi-ld:Sensor:S30"]
    geo = ngsi.get("/entities", type="Sensor", headers={"Accept": "application/geo+json"})
    assert geo.headers["content-type"] == "application/geo+json"
    assert geo.json()["type"] == "FeatureCollection" and geo.json()["features"][0]["geometry"]["type"] == "Point"


def test_discovery_of_types_and_attributes(ngsi):
    ngsi.post("/entityOperations/create", [building(50), {"id": "urn:ngsi-ld:Sensor:S50", "type": "Sensor",
                                                          "temperature": {"type": "Property", "value": 3}}])
    assert sorted(ngsi.get("/types").json()["typeList"]) == ["Building", "Sensor"]
    info = ngsi.get("/types/Building").json()
    assert info["entityCount"] == 1 and "height" in [a["attributeName"] for a in info["attributeDetails"]]
    attrs = ngsi.get("/attributes").json()["attributeList"]
    assert {"height", "temperature", "location", "name"} <= set(attrs)
    t = ngsi.get("/attributes/temperature").json()
    assert t["typeNames"] == ["Sensor"] and t["attributeTypes"] == ["Property"]
    detailed = {a["attributeName"]: a for a in ngsi.get("/attributes", details="true").json()}
    assert set(detailed["temperature"]) == {"id", "type", "attributeName", "typeNames"}  # no counts in the list
    _err(ngsi.get("/types/Nothing"), 404, "ResourceNotFound")


def test_every_change_is_an_event(ngsi, client):
    sub = client.app.state.bus.subscribe("citybase.twin.entity_changed", durable=f"twin-{ngsi.tenant}")
    ngsi.post("/entities", building(60))
    ngsi.send("PATCH", "/entities/urn:ngsi-ld:Building:B60/attrs", {"height": {"type": "Property", "value": 61}})
    mine = [d.event for d in sub.fetch(batch=10_000, timeout=0.5) if d.event.data["tenant"] == ngsi.tenant]
    assert [e.data["op"] for e in mine] == ["create", "update"]
    assert mine[1].data["attrs"] == [EX + "height"] and mine[1].data["types"] == [EX + "Building"]


def test_linked_entities_inline_and_flat(ngsi):
    city = {"id": "urn:ngsi-ld:City:SH", "type": "City", "name": {"type": "Property", "value": "上海"},
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Country:CN"}}
    country = {"id": "urn:ngsi-ld:Country:CN", "type": "Country", "name": {"type": "Property", "value": "中国"}}
    b = building(70, owner={"type": "Relationship", "object": "urn:ngsi-ld:City:SH"})
    assert ngsi.post("/entityOperations/create", [city, country, b]).status_code == 201
    inline = ngsi.get("/entities/urn:ngsi-ld:Building:B70", join="inline", joinLevel="2").json()
    assert inline["owner"]["entity"]["name"]["value"] == "上海"
    assert inline["owner"]["entity"]["owner"]["entity"]["id"] == "urn:ngsi-ld:Country:CN"
    kv = ngsi.get("/entities/urn:ngsi-ld:Building:B70", join="inline", options="keyValues").json()
    assert kv["owner"]["id"] == "urn:ngsi-ld:City:SH" and kv["owner"]["owner"] == "urn:ngsi-ld:Country:CN"
    flat = ngsi.get("/entities/urn:ngsi-ld:Building:B70", join="flat", joinLevel="2").json()
    assert [e["id"] for e in flat] == ["urn:ngsi-ld:Building:B70", "urn:ngsi-ld:City:SH", "urn:ngsi-ld:Country:CN"]
    # a nested pick chooses the members of the linked entity
    picked = ngsi.get("/entities/urn:ngsi-ld:Building:B70", join="inline", pick="id,owner{id,name}").json()
    assert set(picked) == {"id", "owner"} and set(picked["owner"]["entity"]) == {"id", "name"}
    for bad in ("id,,name", "owner{name", "owner{}", "{name}"):
        _err(ngsi.get("/entities/urn:ngsi-ld:Building:B70", pick=bad), 400, "BadRequestData")


def test_a_query_needs_a_selector_and_known_parameters(ngsi):
    ngsi.post("/entities", building(80))
    _err(ngsi.get("/entities", id="urn:ngsi-ld:Building:B80"), 400, "BadRequestData")
    _err(ngsi.get("/entities", type="Building", colour="red"), 400, "InvalidRequest")
    _err(ngsi.get("/entities", type="Building", options="keyValues,fancy"), 400, "InvalidRequest")
    _err(ngsi.get("/entities", type="Building", attrs="id,type"), 400, "BadRequestData")
    _err(ngsi.get("/entities/urn:ngsi-ld:Building:B80", attrs="height", pick="id"), 400, "BadRequestData")
    _err(ngsi.get("/entities/urn:ngsi-ld:Building:B80", attrs="nothingLikeIt"), 404, "ResourceNotFound")


def test_a_database_fault_mid_batch_is_a_503_and_stores_nothing(ngsi, monkeypatch):
    """The database failing inside a batch (SQLite's 'database is locked', a PostgreSQL restart) is answered
    503 with Retry-After, and the batch's other entities are not committed afterwards (which would also turn
    the answer into a 500)."""
    from sqlalchemy.exc import OperationalError

    from citybase.twin import service

    real = service.create_entity
    calls = {"n": 0}

    def flaky(**kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("INSERT …", {}, Exception("database is locked"))
        return real(**kw)

    monkeypatch.setattr(service, "create_entity", flaky)
    r = ngsi.post("/entityOperations/create", [building(90), building(91), building(92)])
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/json" and r.headers["retry-after"]
    monkeypatch.setattr(service, "create_entity", real)
    # nothing of the batch was kept: not the first entity, not even the tenant its first write would create
    _err(ngsi.get("/entities/urn:ngsi-ld:Building:B90"), 404, "NonexistentTenant")


def test_two_first_writes_to_a_new_tenant_at_once_both_succeed(city, monkeypatch):
    """Two requests creating the same new tenant at once: the second, whose check ran before the first's row
    was committed, must not fail on the unique key (it was a 500, found by bench/twin.py with two loaders)."""
    import uuid as _uuid
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from citybase.storage.db import make_sessionmaker
    from citybase.twin.models import TwinTenant
    from citybase.twin.repository import TwinRepository

    name = f"race{_uuid.uuid4().hex[:8]}"
    sessions = make_sessionmaker(city.engine)
    with sessions() as first:
        TwinRepository(first).ensure_tenant(name, datetime.now(UTC))
        first.commit()
    with sessions() as second:
        monkeypatch.setattr(second, "get", lambda *a, **k: None)  # its check saw no tenant yet
        TwinRepository(second).ensure_tenant(name, datetime.now(UTC))
        second.commit()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(TwinTenant).where(TwinTenant.name == name)) == 1


def test_unpaired_surrogates_are_refused_and_escaped_pairs_kept(ngsi):
    h = {**ngsi.headers, "NGSILD-Tenant": ngsi.tenant, "Content-Type": "application/json"}
    lone = b'{"id": "urn:ngsi-ld:Sensor:U1", "type": "Sensor", "label": {"type": "Property", "value": "a\\ud800b"}}'
    _err(ngsi.client.post("/ngsi-ld/v1/entities", content=lone, headers=h), 400, "BadRequestData")
    pair = b'{"id": "urn:ngsi-ld:Sensor:U2", "type": "Sensor", "label": {"type": "Property", "value": "\\ud83d\\ude00"}}'
    assert ngsi.client.post("/ngsi-ld/v1/entities", content=pair, headers=h).status_code == 201
    assert ngsi.get("/entities/urn:ngsi-ld:Sensor:U2").json()["label"]["value"] == "\U0001f600"


def test_a_batch_upsert_written_at_once_does_what_one_entity_at_a_time_did(ngsi, client, monkeypatch):
    """batch_upsert works every entity out in memory and writes the batch with a few statements; the same
    batches sent one entity at a time (``_batch_upsert_each``, the former way) to another tenant must leave the
    same answers, entities (geometry included), history and events."""
    from citybase.twin import service
    from tests.twin.conftest import Ngsi

    B = "urn:ngsi-ld:Building:B"
    batches = [
        ("replace", [building(1), building(2), {"id": "bad", "type": "Building"}, "not an entity",
                     {"type": "Building"}, building(1, height={"type": "Property", "value": 5})]),
        ("update", [{"id": B + "1", "type": "Building", "height": {"type": "Property", "value": 6},
                     "name": "urn:ngsi-ld:null"},
                    building(3), {"id": B + "2", "type": "Tower", "scope": "/a/b"},
                    {"id": B + "2", "height": {"type": "Property", "value": 7, "datasetId": "urn:ds:1"}},
                    {"id": B + "4", "height": {"type": "Property", "value": 1}}]),  # new without a type
        ("replace", [{"id": B + "2", "height": {"type": "Property", "value": 8}},
                     {"id": B + "3", "type": "Building", "location": {"type": "GeoProperty", "value": {
                         "type": "Point", "coordinates": [121.5, 31.3]}}}]),
    ]
    other = Ngsi(ngsi.client, ngsi.headers, ngsi.tenant + "x", linked=True)
    sub = client.app.state.bus.subscribe("citybase.twin.entity_changed", durable=f"twin-{ngsi.tenant}")
    answers = {}
    for caller, way in ((ngsi, service.batch_upsert), (other, service._batch_upsert_each)):
        monkeypatch.setattr(service, "batch_upsert", way)
        answers[caller.tenant] = [(r.status_code, r.text) for r in (
            caller.send("POST", f"/entityOperations/upsert?options={opts}", body) for opts, body in batches)]
    assert answers[ngsi.tenant] == answers[other.tenant]
    assert [s for s, _ in answers[ngsi.tenant]] == [207, 207, 204]

    def state(caller):
        entities = caller.get("/entities", type="Building,Tower", limit=100, options="sysAttrs").json()
        near = caller.get("/entities", type="Building,Tower", georel="near;maxDistance==2000", geometry="Point",
                          coordinates="[121.5,31.3]").json()
        history = {}
        for e in entities:
            h = caller.get(f"/temporal/entities/{e['id']}", options="temporalValues").json()
            history[e["id"]] = {k: v for k, v in h.items() if k not in ("id", "type", "@context")}
        for e in entities:
            for k in ("createdAt", "modifiedAt"):
                e.pop(k)
            for instances in e.values():
                for i in instances if isinstance(instances, list) else [instances]:
                    if isinstance(i, dict):
                        i.pop("createdAt", None), i.pop("modifiedAt", None)
        return entities, [e["id"] for e in near], history

    assert state(ngsi) == state(other)
    events = {}
    for d in sub.fetch(batch=10_000, timeout=0.5):
        events.setdefault(d.event.data["tenant"], []).append((d.event.data["id"], d.event.data["op"],
                                                              d.event.data["attrs"], d.event.data["types"]))
    assert events[ngsi.tenant] == events[other.tenant] and len(events[ngsi.tenant]) == 9


def test_join_in_a_query_body_flat_alone_and_picks_that_leave_nothing(ngsi):
    city = {"id": "urn:ngsi-ld:City:HZ", "type": "City", "name": {"type": "Property", "value": "杭州"}}
    b = building(71, owner={"type": "Relationship", "object": "urn:ngsi-ld:City:HZ"})
    lone = building(72, owner={"type": "Relationship", "object": "urn:ngsi-ld:City:Nowhere"})
    sensor = {"id": "urn:ngsi-ld:Sensor:S71", "type": "Sensor", "temperature": {"type": "Property", "value": 3}}
    assert ngsi.post("/entityOperations/create", [city, b, lone, sensor]).status_code == 201
    r = ngsi.post("/entityOperations/query", {"type": "Query", "entities": [{"type": "Building"}], "join": "inline"})
    assert r.status_code == 200, r.text
    assert {e["id"]: e["owner"].get("entity", {}).get("id") for e in r.json()} == {
        "urn:ngsi-ld:Building:B71": "urn:ngsi-ld:City:HZ", "urn:ngsi-ld:Building:B72": None}
    r = ngsi.post("/entityOperations/query", {"type": "Query", "entities": [{"type": "Building"}], "join": "flat"})
    assert sorted(e["id"] for e in r.json()) == ["urn:ngsi-ld:Building:B71", "urn:ngsi-ld:Building:B72",
                                                 "urn:ngsi-ld:City:HZ"]
    alone = ngsi.get("/entities/urn:ngsi-ld:Building:B72", join="flat").json()  # nothing linked: the entity itself
    assert isinstance(alone, dict) and alone["id"] == "urn:ngsi-ld:Building:B72"
    picked = ngsi.get("/entities", type="Building,Sensor", pick="name").json()
    assert len(picked) == 2 and all(set(e) == {"name"} for e in picked)  # the sensor has no name: left out


def test_flat_join_follows_only_the_relationships_shown(ngsi):
    country = {"id": "urn:ngsi-ld:Country:C2", "type": "Country", "name": {"type": "Property", "value": "中国"}}
    city = {"id": "urn:ngsi-ld:City:NJ", "type": "City", "name": {"type": "Property", "value": "南京"},
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Country:C2"}}
    b = building(73, owner={"type": "Relationship", "object": "urn:ngsi-ld:City:NJ"})
    assert ngsi.post("/entityOperations/create", [country, city, b]).status_code == 201
    r = ngsi.get("/entities", type="Building", join="flat", pick="id,name")
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Building:B73"]  # owner not shown: not followed
    r = ngsi.get("/entities", type="Building", join="flat", joinLevel="2", pick="id,owner{id,name}")
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Building:B73", "urn:ngsi-ld:City:NJ"]


def test_transient_attribute_instances_are_not_served_once_expired(ngsi):
    body = building(74, temperature={"type": "Property", "value": 1, "expiresAt": "2020-01-01T00:00:00Z"},
                    height=[{"type": "Property", "value": 5},
                            {"type": "Property", "value": 6, "datasetId": "urn:ngsi-ld:Dataset:tmp",
                             "expiresAt": "2020-01-01T00:00:00.5Z"}],
                    owner={"type": "Relationship", "object": "urn:ngsi-ld:City:X", "expiresAt": "2999-01-01T00:00:00Z"})
    assert ngsi.post("/entities", body).status_code == 201
    e = ngsi.get("/entities/urn:ngsi-ld:Building:B74").json()
    assert "temperature" not in e and e["height"]["value"] == 5  # the expired instances are gone
    assert e["owner"]["expiresAt"] == "2999-01-01T00:00:00Z"  # a live one shows when it goes
    bad = building(75, temperature={"type": "Property", "value": 1, "expiresAt": "soon"})
    _err(ngsi.post("/entities", bad), 400, "BadRequestData")


def test_key_values_of_several_instances_is_a_dataset_map(ngsi):
    body = building(76, name=[{"type": "Property", "value": "徐汇76号楼"},
                              {"type": "Property", "value": "Xuhui 76", "datasetId": "urn:ngsi-ld:Dataset:en"}])
    assert ngsi.post("/entities", body).status_code == 201
    kv = ngsi.get("/entities/urn:ngsi-ld:Building:B76", options="keyValues").json()
    assert kv["name"] == {"dataset": {"@none": "徐汇76号楼", "urn:ngsi-ld:Dataset:en": "Xuhui 76"}}
    assert kv["height"] == 760  # one instance: its value


def test_scope_append_update_delete_and_ids_left_out_of_paths(ngsi):
    assert ngsi.post("/entities", building(77)).status_code == 201
    eid = "urn:ngsi-ld:Building:B77"
    r = ngsi.send("PATCH", f"/entities/{eid}/attrs", {"scope": "/Shanghai/Xuhui"})
    assert r.status_code == 207 and r.json()["notUpdated"][0]["attributeName"] == "scope"  # none to update
    assert ngsi.post(f"/entities/{eid}/attrs", {"scope": "/Shanghai/Xuhui"}).status_code == 204
    r = ngsi.post(f"/entities/{eid}/attrs?options=noOverwrite", {"scope": ["/Shanghai/Minhang"]})
    assert r.status_code == 204, r.text
    assert ngsi.get(f"/entities/{eid}").json()["scope"] == ["/Shanghai/Xuhui", "/Shanghai/Minhang"]  # added
    assert ngsi.send("DELETE", f"/entities/{eid}/attrs/scope").status_code == 204
    assert "scope" not in ngsi.get(f"/entities/{eid}").json()
    _err(ngsi.send("DELETE", f"/entities/{eid}/attrs/scope"), 404, "ResourceNotFound")
    _err(ngsi.send("PUT", f"/entities/{eid}/attrs/scope", {"type": "Property", "value": 1}), 400, "BadRequestData")
    _err(ngsi.send("PUT", f"/entities/{eid}/attrs/@invalid", {"type": "Property", "value": 1}), 400,
         "BadRequestData")
    for method, path in (("PATCH", "/entities/"), ("PATCH", "/entities//attrs/height"), ("POST", "/entities//attrs/"),
                         ("DELETE", "/entities//attrs/height")):
        _err(ngsi.send(method, path, {"height": {"type": "Property", "value": 1}} if method != "DELETE" else None),
             400, "BadRequestData")
    r = ngsi.client.post("/ngsi-ld/v1/entities/", content="[]", headers={**ngsi.headers, "NGSILD-Tenant": ngsi.tenant,
                                                                            "Content-Type": "application/ld+json"})
    _err(r, 400, "InvalidRequest")  # not an entity at all
