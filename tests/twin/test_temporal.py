"""The temporal API from the same process: every change kept, queried by time, last N, values and aggregates."""

from __future__ import annotations

import pytest

from tests.conftest import ENGINES
from tests.twin.conftest import building


def _sensor(ngsi, n: int = 1) -> str:
    eid = f"urn:ngsi-ld:Sensor:T{n}"
    body = {"id": eid, "type": "Sensor",
            "temperature": {"type": "Property", "value": 10.0, "observedAt": "2026-12-01T00:00:00Z"}}
    assert ngsi.post("/entities", body).status_code == 201
    for minute in range(1, 120):  # two hours of one value a minute: 10.0, 10.1, …
        r = ngsi.send("PATCH", f"/entities/{eid}/attrs/temperature",
                      {"value": round(10 + minute / 10, 1), "observedAt": f"2026-12-01T{minute // 60:02d}:{minute % 60:02d}:00Z"})
        assert r.status_code == 204, r.text
    return eid


def test_history_by_time_last_n_and_values(ngsi):
    eid = _sensor(ngsi)
    full = ngsi.get(f"/temporal/entities/{eid}").json()
    assert len(full["temperature"]) == 120
    assert all(i["instanceId"].startswith("urn:ngsi-ld:") for i in full["temperature"])
    between = ngsi.get(f"/temporal/entities/{eid}", timerel="between", timeAt="2026-12-01T00:30:00Z",
                       endTimeAt="2026-12-01T00:40:00Z").json()
    assert [i["value"] for i in between["temperature"]] == [round(10 + m / 10, 1) for m in range(30, 40)]
    before = ngsi.get(f"/temporal/entities/{eid}", timerel="before", timeAt="2026-12-01T00:03:00Z").json()
    assert len(before["temperature"]) == 3
    last = ngsi.get(f"/temporal/entities/{eid}", lastN="2", options="temporalValues").json()
    assert last["temperature"] == {"type": "Property", "values": [[21.8, "2026-12-01T01:58:00Z"],
                                                                   [21.9, "2026-12-01T01:59:00Z"]]}


def test_aggregation_per_hour(ngsi):
    eid = _sensor(ngsi, 2)
    r = ngsi.get(f"/temporal/entities/{eid}", options="aggregatedValues", aggrMethods="avg,min,max,totalCount",
                 aggrPeriodDuration="PT1H", timerel="after", timeAt="2026-12-01T00:00:00Z")
    assert r.status_code == 200, r.text
    t = r.json()["temperature"]
    assert [round(v, 2) for v, *_ in t["avg"]] == [round(10 + 29.5 / 10, 2), round(10 + 89.5 / 10, 2)]
    assert [v for v, *_ in t["min"]] == [10.0, 16.0] and [v for v, *_ in t["max"]] == [15.9, 21.9]
    assert [v for v, *_ in t["totalCount"]] == [60, 60]
    assert t["avg"][0][1:] == ["2026-12-01T00:00:00Z", "2026-12-01T01:00:00Z"]
    bad = ngsi.get(f"/temporal/entities/{eid}", options="aggregatedValues", aggrMethods="median")
    assert bad.status_code == 400 and bad.json()["type"].endswith("BadRequestData")


def test_temporal_create_query_and_delete(ngsi):
    body = {"id": "urn:ngsi-ld:Sensor:T9", "type": "Sensor", "temperature": [
        {"type": "Property", "value": v, "observedAt": f"2026-11-30T0{h}:00:00Z"} for h, v in enumerate([1, 2, 3])]}
    r = ngsi.post("/temporal/entities", body)
    assert r.status_code == 201, r.text
    assert ngsi.get("/entities/urn:ngsi-ld:Sensor:T9").json()["temperature"]["value"] == 3  # the latest instance
    q = ngsi.get("/temporal/entities", type="Sensor", timerel="after", timeAt="2026-11-30T00:30:00Z").json()
    assert [i["value"] for i in q[0]["temperature"]] == [2, 3]
    inst = ngsi.get("/temporal/entities/urn:ngsi-ld:Sensor:T9").json()["temperature"][0]["instanceId"]
    r = ngsi.send("DELETE", f"/temporal/entities/urn:ngsi-ld:Sensor:T9/attrs/temperature/{inst}")
    assert r.status_code == 204
    assert len(ngsi.get("/temporal/entities/urn:ngsi-ld:Sensor:T9").json()["temperature"]) == 2
    assert ngsi.send("DELETE", "/temporal/entities/urn:ngsi-ld:Sensor:T9").status_code == 204
    assert ngsi.get("/temporal/entities/urn:ngsi-ld:Sensor:T9").status_code == 404


def test_bad_time_parameters(ngsi):
    ngsi.post("/entities", building(1))
    for params in ({"timerel": "between", "timeAt": "2026-12-01T00:00:00Z"}, {"timerel": "after"},
                   {"timerel": "during", "timeAt": "2026-12-01T00:00:00Z"}, {"timeAt": "yesterday", "timerel": "after"},
                   {"lastN": "-1"}):
        r = ngsi.get("/temporal/entities/urn:ngsi-ld:Building:B1", **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["type"].endswith("BadRequestData")


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_history_partitions_and_retention(empty_db):
    """On PostgreSQL the history is partitioned by month: the timer keeps partitions ahead, and retention
    drops whole old months; on SQLite the same calls delete rows. Either way nothing newer is lost."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select, text

    from citybase.storage.db import make_sessionmaker
    from citybase.storage.migrate import upgrade
    from citybase.twin.models import TwinHistory
    from citybase.twin.repository import TwinRepository

    upgrade(empty_db.engine)
    sessions = make_sessionmaker(empty_db.engine)
    now = datetime.now(UTC)
    old = datetime(2020, 3, 15, tzinfo=UTC)
    with sessions() as s:
        repo = TwinRepository(s)
        if repo.pg:
            repo.add_partitions(old, months_ahead=0)  # a partition for an old month
            assert s.scalar(text("SELECT to_regclass('twin_history_2020_03')")) is not None
        made = repo.add_partitions(now + timedelta(days=62))
        assert (len(made) > 0) == repo.pg
        rows = [{"tenant": "", "entity_id": "urn:x:1", "types": ["urn:T"], "attr": "urn:a", "dataset_id": None,
                 "instance_id": f"urn:ngsi-ld:{i}", "observed_at": None, "recorded_at": t, "instance": {"value": i},
                 "number": float(i), "deleted": False} for i, t in enumerate([old, old, now])]
        repo.append_history(rows)
        s.commit()
    with sessions() as s:
        assert TwinRepository(s).prune_history(now - timedelta(days=30)) == 2
        s.commit()
        assert s.scalar(select(func.count()).select_from(TwinHistory)) == 1
        if TwinRepository(s).pg:
            assert s.scalar(text("SELECT to_regclass('twin_history_2020_03')")) is None  # dropped whole


@pytest.fixture
def small_temporal_limit(monkeypatch):
    """Temporal pagination at 10 instances of an attribute (the ETSI suite's setting), for one test."""
    from citybase.twin.settings import twin_settings

    monkeypatch.setenv("CITYBASE_TWIN_TEMPORAL_LIMIT", "10")
    twin_settings.cache_clear()
    yield
    monkeypatch.delenv("CITYBASE_TWIN_TEMPORAL_LIMIT")
    twin_settings.cache_clear()


def _vehicle(ngsi, n: int, minutes: range, *, fuel_offset: int = 0) -> str:
    eid = f"urn:ngsi-ld:Sensor:V{n}"
    body = {"id": eid, "type": "Sensor",
            "temperature": [{"type": "Property", "value": m, "observedAt": f"2026-01-01T01:{m:02d}:00Z"} for m in minutes],
            "height": [{"type": "Property", "value": m, "observedAt": f"2026-01-01T01:{m + fuel_offset:02d}:00Z"}
                       for m in minutes]}
    assert ngsi.post("/temporal/entities", body).status_code == 201
    return eid


def test_temporal_pagination_cuts_by_time(ngsi, small_temporal_limit):
    """More than the limit of instances: 206 with Content-Range date-time <start>-<end>/<size> (§6.3.10); the
    range ends where the first attribute is cut, so that no other attribute loses an instance inside it."""
    eid = _vehicle(ngsi, 1, range(1, 21))
    r = ngsi.get(f"/temporal/entities/{eid}")
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == "date-time 2026-01-01T01:01:00Z-2026-01-01T01:10:00Z/*"
    assert [i["value"] for i in r.json()["temperature"]] == list(range(1, 11))
    after = ngsi.get(f"/temporal/entities/{eid}", timerel="after", timeAt="2026-01-01T00:00:00Z",
                     options="temporalValues")
    assert after.status_code == 206
    assert after.headers["content-range"] == "date-time 2026-01-01T00:00:00Z-2026-01-01T01:10:00Z/*"
    assert len(after.json()["height"]["values"]) == 10
    last = ngsi.get(f"/temporal/entities/{eid}", lastN="15", timerel="before", timeAt="2026-01-01T02:00:00Z")
    assert last.status_code == 206
    assert last.headers["content-range"] == "date-time 2026-01-01T02:00:00Z-2026-01-01T01:11:00Z/15"
    assert [i["value"] for i in last.json()["temperature"]] == list(range(11, 21))
    small = ngsi.get(f"/temporal/entities/{eid}", lastN="5")  # lastN within the limit is the limit asked for
    assert small.status_code == 200 and "content-range" not in small.headers


def test_temporal_pagination_keeps_emptied_attributes_and_spans_entities(ngsi, small_temporal_limit):
    early = _vehicle(ngsi, 2, range(1, 21), fuel_offset=30)  # height starts after temperature's 20 minutes
    late = _vehicle(ngsi, 3, range(40, 43))
    one = ngsi.get(f"/temporal/entities/{early}", timerel="after", timeAt="2026-01-01T00:00:00Z")
    assert one.status_code == 206 and one.json()["height"] == []
    q = ngsi.get("/temporal/entities", type="Sensor", timerel="after", timeAt="2026-01-01T00:00:00Z")
    assert q.status_code == 206
    assert q.headers["content-range"] == "date-time 2026-01-01T00:00:00Z-2026-01-01T01:10:00Z/*"
    by_id = {e["id"]: e for e in q.json()}
    assert by_id[late]["temperature"] == [] and by_id[late]["height"] == []
    post = ngsi.post("/temporal/entityOperations/query", {
        "type": "Query", "entities": [{"type": "Sensor"}],
        "temporalQ": {"timerel": "before", "timeAt": "2026-01-01T03:00:00Z"}})
    assert post.status_code == 206 and post.headers["content-range"].startswith("date-time ")
    few = ngsi.get("/temporal/entities", type="Sensor", timerel="after", timeAt="2026-01-01T01:45:00Z")
    assert few.status_code == 200 and "content-range" not in few.headers


def test_temporal_query_rules(ngsi):
    """What a temporal query must name (§5.7.4), how bad options are answered (InvalidRequest), and that an
    entity with nothing in the range asked for is left out of the answer."""
    early = _vehicle(ngsi, 4, range(1, 4))
    late = _vehicle(ngsi, 5, range(40, 43))
    r = ngsi.get("/temporal/entities", id=early, timerel="after", timeAt="2026-01-01T00:00:00Z")
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")  # ids alone are not a query
    for params in ({"options": "temporalValues,bogus"}, {"format": "bogus"}):
        r = ngsi.get("/temporal/entities", type="Sensor", **params)
        assert r.status_code == 400 and r.json()["type"].endswith("InvalidRequest"), params
    r = ngsi.get("/temporal/entities", type="Sensor", attrs="height", pick="height")
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    r = ngsi.get("/temporal/entities", type="Sensor", timerel="after", timeAt="2026-01-01T01:30:00Z")
    assert [e["id"] for e in r.json()] == [late]
    r = ngsi.post("/temporal/entityOperations/query", {
        "type": "Query", "entities": [{"type": "Sensor"}],
        "temporalQ": {"timerel": "before", "timeAt": "2026-01-01T01:30:00Z"}})
    assert [e["id"] for e in r.json()] == [early]
    r = ngsi.get("/temporal/entities", type="Sensor", attrs="height", datasetId="urn:ngsi-ld:Dataset:none")
    assert r.status_code == 200 and r.json() == []


def test_timeproperty_deleted_at_shows_the_deletions_only(ngsi):
    eid = _vehicle(ngsi, 6, range(1, 4))
    assert ngsi.send("DELETE", f"/entities/{eid}/attrs/height").status_code == 204
    r = ngsi.get(f"/temporal/entities/{eid}", timeproperty="deletedAt")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "type", "height"}
    assert len(body["height"]) == 1 and body["height"][0]["deletedAt"].endswith("Z")


def test_a_deletion_keeps_the_attribute_type_in_the_history(ngsi):
    body = {"id": "urn:ngsi-ld:Sensor:D1", "type": "Sensor",
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:P1"},
            "name": {"type": "LanguageProperty", "languageMap": {"zh": "一号", "en": "One"}}}
    assert ngsi.post("/entities", body).status_code == 201
    for attr in ("owner", "name"):
        assert ngsi.send("DELETE", f"/entities/urn:ngsi-ld:Sensor:D1/attrs/{attr}").status_code == 204
    r = ngsi.get("/temporal/entities/urn:ngsi-ld:Sensor:D1", timeproperty="deletedAt").json()
    assert r["owner"][0]["type"] == "Relationship" and r["owner"][0]["object"] == "urn:ngsi-ld:null"
    assert r["name"][0]["languageMap"] == {"@none": "urn:ngsi-ld:null"}
    tv = ngsi.get("/temporal/entities/urn:ngsi-ld:Sensor:D1", timeproperty="deletedAt", options="temporalValues").json()
    assert tv["owner"]["type"] == "Relationship" and tv["owner"]["objects"][0][0] == "urn:ngsi-ld:null"


def test_temporal_paths_without_an_entity_or_attribute_are_no_operation(ngsi):
    eid = _vehicle(ngsi, 7, range(1, 3))
    for method, path in (("DELETE", "/temporal/entities/"), ("PATCH", f"/temporal/entities/{eid}/attrs//urn:ngsi-ld:x")):
        r = ngsi.send(method, path, {"value": 1} if method == "PATCH" else None)
        assert r.status_code == 405 and r.json()["type"].endswith("OperationNotSupported"), (method, path, r.text)
    r = ngsi.send("DELETE", f"/temporal/entities/{eid}/attrs/%252e%252e")  # a doubly encoded ..
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData"), r.text


def test_every_instance_a_batch_upsert_writes_has_its_own_instance_id(ngsi):
    """A batch writes its history at once (one random part and a counter per batch for the instance ids): each
    instance still has an id of its own, a URI, and a PATCH of one instance changes that one alone."""
    sensors = [{"id": f"urn:ngsi-ld:Sensor:IB{n}", "type": "Sensor",
                "temperature": {"type": "Property", "value": n, "observedAt": "2026-11-30T01:00:00Z"},
                "humidity": {"type": "Property", "value": 50 + n, "observedAt": "2026-11-30T01:00:00Z"}}
               for n in range(3)]
    assert ngsi.post("/entityOperations/upsert", sensors).status_code == 201
    update = [{"id": s["id"], "type": "Sensor", "temperature": {"type": "Property", "value": 10 + n,
                                                               "observedAt": "2026-11-30T02:00:00Z"}}
              for n, s in enumerate(sensors)]
    assert ngsi.send("POST", "/entityOperations/upsert?options=update", update).status_code == 204
    ids = []
    for s in sensors:
        h = ngsi.get(f"/temporal/entities/{s['id']}").json()
        ids += [i["instanceId"] for a in ("temperature", "humidity") for i in h[a]]
    assert len(ids) == 9 and len(set(ids)) == 9 and all(i.startswith("urn:ngsi-ld:") for i in ids)
    first = ngsi.get("/temporal/entities/urn:ngsi-ld:Sensor:IB1").json()["temperature"]
    target = next(i for i in first if i["value"] == 11)
    r = ngsi.send("PATCH", f"/temporal/entities/urn:ngsi-ld:Sensor:IB1/attrs/temperature/{target['instanceId']}",
                  {"temperature": {"type": "Property", "value": 99, "observedAt": "2026-11-30T02:00:00Z"}})
    assert r.status_code == 204, r.text
    values = {s["id"]: sorted(i["value"] for i in ngsi.get(f"/temporal/entities/{s['id']}").json()["temperature"])
              for s in sensors}
    assert values == {"urn:ngsi-ld:Sensor:IB0": [0, 10], "urn:ngsi-ld:Sensor:IB1": [1, 99],
                      "urn:ngsi-ld:Sensor:IB2": [2, 12]}
