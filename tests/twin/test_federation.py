"""Federation: a district twin answers queries for entities held by another twin it has registered
(two real citybase processes, each with its own database), without copying them."""

from __future__ import annotations

from tests.servers import call, serve
from tests.twin.conftest import CTX

LD = {"Content-Type": "application/ld+json"}


def _entity(n: int) -> dict:
    return {"id": f"urn:ngsi-ld:Streetlight:JD-{n}", "type": "Streetlight",
            "powerState": {"type": "Property", "value": "on" if n % 2 else "off"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [121.44 + n / 1000, 31.20]}},
            "@context": [CTX]}


def test_a_district_twin_answers_for_a_streets_registered_entities(city, tmp_path):
    street_db = f"sqlite:///{tmp_path / 'street.sqlite3'}"
    from citybase.storage.db import make_engine
    from citybase.storage.migrate import upgrade

    upgrade(make_engine(street_db))
    token = city.tokens["dataofficer"]
    auth = {"Authorization": f"Bearer {token}"}
    with serve(street_db, tmp_path / "street", CITYBASE_TWIN_ANONYMOUS="write") as street, \
            serve(city.db.url, tmp_path / "district") as district:
        for n in range(3):
            assert call("POST", f"{street.base}/ngsi-ld/v1/entities", json_body=_entity(n), headers=LD).status == 201
        tenant = {"NGSILD-Tenant": "fed-" + tmp_path.name[-8:]}
        local = {**_entity(9), "id": "urn:ngsi-ld:Streetlight:XH-9"}
        assert call("POST", f"{district.base}/ngsi-ld/v1/entities", json_body=local,
                    headers={**LD, **auth, **tenant}).status == 201
        reg = {"type": "ContextSourceRegistration", "endpoint": street.base,
               "information": [{"entities": [{"type": "Streetlight"}]}], "@context": [CTX]}
        r = call("POST", f"{district.base}/ngsi-ld/v1/csourceRegistrations", json_body=reg, headers={**LD, **auth, **tenant})
        assert r.status == 201, r.body
        rid = r.headers["location"].rsplit("/", 1)[-1]

        q = call("GET", f"{district.base}/ngsi-ld/v1/entities?type=Streetlight&count=true", headers={**auth, **tenant})
        assert q.status == 200, q.body
        ids = sorted(e["id"] for e in q.body)
        assert ids == ["urn:ngsi-ld:Streetlight:JD-0", "urn:ngsi-ld:Streetlight:JD-1", "urn:ngsi-ld:Streetlight:JD-2",
                       "urn:ngsi-ld:Streetlight:XH-9"]
        assert q.headers["ngsild-results-count"] == "4"
        on = call("GET", f"{district.base}/ngsi-ld/v1/entities?type=Streetlight&q=powerState==%22on%22", headers={**auth, **tenant})
        assert sorted(e["id"] for e in on.body) == ["urn:ngsi-ld:Streetlight:JD-1", "urn:ngsi-ld:Streetlight:XH-9"]
        one = call("GET", f"{district.base}/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:JD-2", headers={**auth, **tenant})
        assert one.status == 200 and one.body["powerState"]["value"] == "off"
        # local=true: this twin's own entities only; the registration can be read, then removed
        mine = call("GET", f"{district.base}/ngsi-ld/v1/entities?type=Streetlight&local=true", headers={**auth, **tenant})
        assert [e["id"] for e in mine.body] == ["urn:ngsi-ld:Streetlight:XH-9"]
        got = call("GET", f"{district.base}/ngsi-ld/v1/csourceRegistrations/{rid}", headers={**auth, **tenant})
        assert got.body["information"][0]["entities"][0]["type"] == "Streetlight"
        assert call("DELETE", f"{district.base}/ngsi-ld/v1/csourceRegistrations/{rid}", headers={**auth, **tenant}).status == 204
        after = call("GET", f"{district.base}/ngsi-ld/v1/entities?type=Streetlight", headers={**auth, **tenant})
        assert [e["id"] for e in after.body] == ["urn:ngsi-ld:Streetlight:XH-9"]


def test_registrations_are_checked(ngsi):
    bad = [{"type": "ContextSourceRegistration", "information": [{"entities": [{"type": "Streetlight"}]}]},  # no endpoint
           {"type": "ContextSourceRegistration", "endpoint": "ftp://x", "information": [{"entities": [{"type": "A"}]}]},
           {"type": "ContextSourceRegistration", "endpoint": "http://x.org", "information": []},
           {"type": "Registration", "endpoint": "http://x.org", "information": [{"entities": [{"type": "A"}]}]},
           {"type": "ContextSourceRegistration", "endpoint": "http://x.org", "information": [{"entities": [{"id": "urn:a:1"}]}]}]
    for body in bad:
        r = ngsi.post("/csourceRegistrations", body)
        assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData"), (body, r.text)
    assert ngsi.get("/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:none").status_code == 404


def _registration(rid: str, entities: list[dict], **more) -> dict:
    return {"id": rid, "type": "ContextSourceRegistration", "information": [{"entities": entities, **more.pop("info", {})}],
            "endpoint": "http://street.example.org", **more}


def test_registrations_are_discovered_by_entities_attributes_properties_place_and_time(ngsi):
    regs = [_registration("urn:ngsi-ld:ContextSourceRegistration:a", [{"type": "Building"}],
                          info={"propertyNames": ["name"]}, provider="north"),
            _registration("urn:ngsi-ld:ContextSourceRegistration:b", [{"id": "urn:ngsi-ld:Sensor:S1", "type": "Sensor"}],
                          info={"propertyNames": ["temperature"]}, provider="south"),
            _registration("urn:ngsi-ld:ContextSourceRegistration:c", [{"type": "Building"}],
                          location={"type": "Point", "coordinates": [121.43, 31.19]},
                          observationInterval={"startAt": "2026-01-01T00:00:00Z", "endAt": "2026-06-01T00:00:00Z"})]
    for body in regs:
        assert ngsi.post("/csourceRegistrations", body).status_code == 201

    def found(**params) -> list[str]:
        r = ngsi.get("/csourceRegistrations", **params)
        assert r.status_code == 200, r.text
        return sorted(x["id"].rsplit(":", 1)[-1] for x in r.json())

    assert found(type="Building") == ["a", "c"]
    assert found(attrs="temperature") == ["b", "c"]  # c names no attributes: it may hold any
    assert found(id="urn:ngsi-ld:Sensor:S1,urn:ngsi-ld:Building:B9") == ["a", "b", "c"]
    assert found(id="urn:ngsi-ld:Sensor:S2") == ["a", "c"]
    assert found(q='provider=="south"') == ["b"]  # a Context Source Property, shown back in the caller's names
    assert ngsi.get("/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:b").json()["provider"] == "south"
    assert found(type="Building", georel="near;maxDistance==1000", geometry="Point", coordinates="[121.431,31.19]") == ["c"]
    assert found(type="Building", timerel="before", timeAt="2025-12-01T00:00:00Z") == []
    assert found(type="Building", timerel="after", timeAt="2026-03-01T00:00:00Z") == ["c"]

    page = ngsi.get("/csourceRegistrations", type="Building", limit=1, offset=1)
    assert [x["id"] for x in page.json()] == ["urn:ngsi-ld:ContextSourceRegistration:c"]
    assert '</ngsi-ld/v1/csourceRegistrations?type=Building&limit=1&offset=0>; rel="prev"' in page.headers["link"]

    for bad in ({}, {"id": "not a uri"}, {"q": "(provider"}, {"georel": "within"}, {"type": "Building", "timerel": "before"}):
        r = ngsi.get("/csourceRegistrations", **bad)
        assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData"), (bad, r.text)
    for method in ("PATCH", "DELETE"):  # the id left out of the path
        assert ngsi.send(method, "/csourceRegistrations/").status_code == 405


def _car(eid: str, speed: int, **more) -> dict:
    return {"id": eid, "type": "Car", "speed": {"type": "Property", "value": speed}, **more, "@context": [CTX]}


def test_sources_are_asked_as_their_mode_and_operations_say(ngsi, tmp_path):
    """The district twin (in this process, both engines) asks a street twin (a server process): an exclusive
    source's attributes win over the local ones and it is asked only for what it registered, an auxiliary
    one fills in what the local entity lacks, and a source is asked with the operations it takes."""
    street_db = f"sqlite:///{tmp_path / 'street.sqlite3'}"
    from citybase.storage.db import make_engine
    from citybase.storage.migrate import upgrade

    upgrade(make_engine(street_db))
    ngsi.linked = False  # core names only: the street cannot fetch a context hosted by this in-process twin
    v1, v2 = "urn:ngsi-ld:Car:V1", "urn:ngsi-ld:Car:V2"
    with serve(street_db, tmp_path / "street", CITYBASE_TWIN_ANONYMOUS="write") as street:
        parked = {"type": "Relationship", "object": "urn:ngsi-ld:Parking:P1"}
        for body in (_car(v1, 80, isParked=parked), _car(v2, 30)):
            assert call("POST", f"{street.base}/ngsi-ld/v1/entities", json_body=body, headers=LD).status == 201
        assert ngsi.post("/entities", _car(v1, 10, brand={"type": "Property", "value": "Hongqi"})).status_code == 201

        def register(mode: str, entities: list[dict], **more) -> str:
            body = {"type": "ContextSourceRegistration", "endpoint": street.base, "mode": mode,
                    "information": [{"entities": entities, **more.pop("info", {})}], **more, "@context": [CTX]}
            r = ngsi.post("/csourceRegistrations", body)
            assert r.status_code == 201, r.text
            return r.headers["location"].rsplit("/", 1)[-1]

        rid = register("exclusive", [{"id": v1, "type": "Car"}], info={"propertyNames": ["speed"]})
        one = ngsi.get(f"/entities/{v1}").json()
        assert one["speed"]["value"] == 80 and one["brand"]["value"] == "Hongqi" and "isParked" not in one
        cars = ngsi.get("/entities", type="Car").json()
        assert [(e["id"], e["speed"]["value"], "isParked" in e) for e in cars] == [(v1, 80, False)]
        assert ngsi.send("DELETE", f"/csourceRegistrations/{rid}").status_code == 204

        rid = register("auxiliary", [{"id": v1, "type": "Car"}])
        one = ngsi.get(f"/entities/{v1}").json()
        assert one["speed"]["value"] == 10 and one["isParked"]["object"] == "urn:ngsi-ld:Parking:P1"
        assert ngsi.send("DELETE", f"/csourceRegistrations/{rid}").status_code == 204

        rid = register("inclusive", [{"type": "Car"}], operations=["queryBatch"])
        assert ngsi.get(f"/entities/{v2}").json()["speed"]["value"] == 30  # asked with POST /entityOperations/query
        found = ngsi.post("/entityOperations/query", {"type": "Query", "entities": [{"type": "Car"}], "@context": [CTX]})
        assert found.status_code == 200 and sorted(e["id"] for e in found.json()) == [v1, v2]
        assert sorted(e["id"] for e in ngsi.get("/entities", type="Car").json()) == [v1, v2]
        assert ngsi.send("DELETE", f"/csourceRegistrations/{rid}").status_code == 204

        register("inclusive", [{"type": "Car"}], operations=["retrieveEntity"])  # takes no queries
        assert [e["id"] for e in ngsi.get("/entities", type="Car").json()] == [v1]
        assert ngsi.get(f"/entities/{v2}").json()["speed"]["value"] == 30


def test_subscriptions_to_registrations_are_kept_apart_from_entity_subscriptions(ngsi):
    body = {"id": "urn:ngsi-ld:Subscription:csr-1", "type": "Subscription", "entities": [{"type": "Building"}],
            "notification": {"format": "keyValues", "endpoint": {"uri": "http://localhost:1111/notify"}}}
    r = ngsi.post("/csourceSubscriptions", body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/ngsi-ld/v1/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1"
    assert ngsi.post("/csourceSubscriptions", body).status_code == 409
    got = ngsi.get("/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1").json()
    assert got["entities"] == [{"type": "Building"}] and got["status"] == "active"
    assert "notificationTrigger" not in got and "jsonldContext" not in got  # neither was given
    assert ngsi.get("/subscriptions/urn:ngsi-ld:Subscription:csr-1").status_code == 404  # not an entity subscription
    listed = ngsi.get("/csourceSubscriptions", count="true")
    assert [s["id"] for s in listed.json()] == [body["id"]] and listed.headers["ngsild-results-count"] == "1"

    assert ngsi.send("PATCH", "/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1", {"isActive": False}).status_code == 204
    assert ngsi.get("/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1").json()["status"] == "paused"
    no_endpoint = {"notification": {"format": "keyValues"}}  # a notification given replaces the old one whole
    assert ngsi.send("PATCH", "/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1", no_endpoint).status_code == 400
    assert ngsi.post("/csourceSubscriptions", {**body, "id": "urn:x:2", "type": "Registration"}).status_code == 400
    for method in ("PATCH", "DELETE"):
        assert ngsi.send(method, "/csourceSubscriptions/").status_code == 405
    assert ngsi.send("DELETE", "/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1").status_code == 204
    assert ngsi.get("/csourceSubscriptions/urn:ngsi-ld:Subscription:csr-1").status_code == 404
