"""Open311 GeoReport v2 at /open311/v2, on SQLite and PostgreSQL.

The API is driven by two Open311 client libraries from PyPI, unchanged, against the app served by a real
uvicorn on 127.0.0.1: civicbot's ``Open311Client`` (services, definitions, POST with attributes and
api_key, tokens, requests; JSON) and ``georeport`` (services, definitions, requests; JSON and XML).
Discovery and every error case are checked over plain HTTP."""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest
from civicbot import Endpoint, HttpTransport, Open311Client
from civicbot.http import RateLimiter
from georeport import GeoReport
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.geo.models import Building
from citybase.ops.workflow.models import Incident
from citybase.registry.models import Department
from citybase.security.models import User

BASE = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
_next = itertools.count()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(city, client_for):
    """The test city's app served by uvicorn in a background thread; yields the Open311 base URL."""
    import uvicorn

    app = client_for(city).app  # the same app (and bus) as the ``client`` fixture
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="open311-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}{BASE}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def o311(served) -> Open311Client:
    """civicbot's Open311 client for our endpoint (no politeness delay: the server is local)."""
    endpoint = Endpoint(id="citybase", name="citybase test city", base_url=served, write=True)
    return Open311Client(endpoint, transport=HttpTransport(rate_limiter=RateLimiter(min_interval=0)))


def _fresh_building(city) -> Building:
    """A commercial building no other test reports at (the loop tests use residential ones)."""
    with Session(city.engine) as s:
        rows = s.scalars(select(Building).where(Building.use == "commercial").order_by(Building.id)).all()
    return rows[next(_next) * 7 % len(rows)]


def _phone() -> str:
    return "139" + "".join(random.choices("0123456789", k=8))


def _unique(text: str) -> str:
    return f"{text}（编号{uuid.uuid4().hex[:10]}）"


def _incident(city, code: str) -> Incident:
    with Session(city.engine) as s:
        return s.scalars(select(Incident).where(Incident.code == code)).one()


def _count(city) -> int:
    with Session(city.engine) as s:
        return s.scalar(select(func.count()).select_from(Incident))


def _w3c(dt) -> str:
    return as_utc(dt).astimezone(SHANGHAI).isoformat(timespec="seconds")


def _post(client, city, fmt="json", **fields):
    b = fields.pop("building", None) or _fresh_building(city)
    data = {"api_key": city.tokens["citizen"], "service_code": "02002", "lat": b.lat, "long": b.lon,
            "description": _unique("路灯不亮，晚上很黑")}
    data.update(fields)
    return client.post(f"{BASE}/requests.{fmt}", data={k: v for k, v in data.items() if v is not None})


def _close_by_handler(client, city, code: str, result: str) -> None:
    """Each department's handler completes its task; categories without verification then close at once."""
    inc = _incident(city, code)
    admin = city.auth("admin")
    tasks = client.get(f"/api/v1/ops/incidents/{inc.id}", headers=city.auth("dispatcher")).json()["tasks"]
    for task in [t for t in tasks if t["status"] in ("pending", "accepted")]:
        user = client.post("/api/v1/users", headers=admin, json={
            "username": f"h311-{uuid.uuid4().hex[:8]}", "display_name": "处置员", "roles": ["handler"],
            "department_id": task["department_id"]}).json()
        token = client.post(f"/api/v1/users/{user['id']}/tokens", json={}, headers=admin).json()["token"]
        body = {"result": result, "task_id": task["id"]}
        r = client.post(f"/api/v1/ops/incidents/{inc.id}/complete", json=body,
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed", r.text


def _as_list(x):
    return x if isinstance(x, list) else [x]


# ---------------------------------------------------------------- discovery, services, definitions


def test_discovery_in_json_and_xml(client):
    r = client.get(f"{BASE}/discovery.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    d = r.json()
    assert {"changeset", "contact", "key_service", "endpoints"} <= set(d)
    (ep,) = d["endpoints"]
    assert ep["specification"] == SPEC and ep["url"].endswith(BASE) and ep["type"] == "production"
    assert ep["formats"] == ["text/xml", "application/json"]
    r = client.get(f"{BASE}/discovery.xml")
    assert r.status_code == 200 and r.headers["content-type"] == "text/xml; charset=utf-8"
    assert r.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(r.content)
    assert root.tag == "discovery" and root.findtext("endpoints/endpoint/specification") == SPEC
    formats = root.findall("endpoints/endpoint/formats/format")
    assert [f.text for f in formats] == ["text/xml", "application/json"]


def test_service_list_through_both_clients(served, o311, client):
    cats = client.get("/api/v1/ops/categories").json()
    as_json = GeoReport(served).get_service_list()
    assert [s["service_code"] for s in as_json] == [c["code"] for c in cats]
    lamp = next(s for s in as_json if s["service_code"] == "02002")
    assert lamp["service_name"] == "路灯不亮" and lamp["group"] == "设施管理" and lamp["metadata"] is True
    assert lamp["type"] == "realtime" and "路灯" in lamp["keywords"].split(", ") and lamp["description"]
    assert list(lamp) == ["service_code", "service_name", "description", "metadata", "type", "keywords",
                          "group"]
    as_xml = GeoReport(served, output_format="xml").get_service_list()
    assert [s["service_code"] for s in as_xml] == [c["code"] for c in cats]  # "01001" keeps its leading zero
    assert next(s for s in as_xml if s["service_code"] == "02002")["metadata"] == "true"
    assert o311.list_services() == as_json


def test_service_definition_through_both_clients(served, o311):
    d = GeoReport(served).get_service_definition("02002")
    assert d["service_code"] == "02002"
    attrs = {a["code"]: a for a in d["attributes"]}
    prio = attrs["priority"]
    assert prio["datatype"] == "singlevaluelist" and prio["variable"] is True and prio["required"] is False
    assert [(v["key"], v["name"]) for v in prio["values"]] == [
        ("normal", "一般"), ("urgent", "紧急"), ("low", "不急")]
    detail = attrs["location_detail"]
    assert detail["datatype"] == "string" and detail["variable"] is True and "values" not in detail
    assert attrs["time_limits"]["variable"] is False  # information for the user only
    assert sorted(a["order"] for a in d["attributes"]) == [1, 2, 3]
    fields = {"variable", "code", "datatype", "required", "datatype_description", "order", "description"}
    assert all(fields <= set(a) for a in d["attributes"])
    x = GeoReport(served, output_format="xml").get_service_definition("02002")
    xattrs = {a["code"]: a for a in x["attributes"]["attribute"]}
    assert [v["key"] for v in xattrs["priority"]["values"]["value"]] == ["normal", "urgent", "low"]
    assert xattrs["priority"]["required"] == "false" and xattrs["priority"]["datatype_description"] is None
    assert o311.get_service_definition("02002") == d


# ---------------------------------------------------------------- POST and reading back


def test_a_request_posted_by_a_client_enters_the_loop_and_reads_back(served, o311, client, city):
    b = _fresh_building(city)
    sub = client.app.state.bus.subscribe("citybase.ops.incident.*", durable=f"o311-{uuid.uuid4().hex}")
    description = _unique("商铺门前的路灯不亮已经三天了，联系电话13812345678")
    sent = o311.create_request("02002", dry_run=False, confirm="SEND", api_key=city.tokens["citizen"],
                               validate_remote=True, lat=b.lat, lng=b.lon, description=description,
                               attributes={"priority": "urgent", "location_detail": "东侧门口"},
                               first_name="三", last_name="张", phone=_phone(), email="zhang@example.org",
                               device_id="dev-42",
                               account_id="acct-7", media_url="https://example.org/lamp.jpg")
    (created,) = sent.response
    # the spec: a token "should not be returned if service_request_id is returned", and ours always is
    assert list(created) == ["service_request_id", "service_notice", "account_id"]
    assert created["account_id"] is None
    sid = created["service_request_id"]

    inc = _incident(city, sid)
    assert inc.channel == "open311" and inc.priority == "urgent"
    assert inc.category_code == "02002" and inc.status == "dispatched" and inc.reporter_name == "张三"
    with Session(city.engine) as s:
        assert inc.reporter_user_id == s.scalars(select(User.id).where(User.username == "citizen")).one()
        route = client.get("/api/v1/ops/route", params={"category_code": "02002", "lon": b.lon, "lat": b.lat},
                           headers=city.auth("dispatcher")).json()
        dept = s.get(Department, route["main_department_id"])
    assert inc.main_department_id == dept.id and dept.name in created["service_notice"]

    got = o311.get_request(sid)
    assert got["service_request_id"] == sid and got["status"] == "open" and got["service_code"] == "02002"
    assert got["service_name"] == "路灯不亮" and got["agency_responsible"] == dept.name
    assert got["description"] == description.replace("13812345678", "138****5678")  # the feed is public
    assert (got["lat"], got["long"]) == (b.lat, b.lon) and got["address"] == "东侧门口"
    assert got["zipcode"] is None
    assert got["media_url"] == "https://example.org/lamp.jpg" and got["address_id"] is None
    assert got["requested_datetime"] == _w3c(inc.created_at) and got["requested_datetime"].endswith("+08:00")
    assert got["expected_datetime"] == _w3c(inc.deadline_at)
    assert got["updated_datetime"] == _w3c(inc.updated_at)
    assert list(got)[:3] == ["service_request_id", "status", "status_notes"] and "notes" not in got
    assert GeoReport(served).get_service_request(sid) == got
    as_xml = GeoReport(served, output_format="xml").get_service_request(sid)
    assert as_xml["service_request_id"] == sid and as_xml["agency_responsible"] == dept.name
    assert float(as_xml["lat"]) == b.lat and as_xml["zipcode"] is None and as_xml["status"] == "open"
    assert o311.list_requests(service_request_ids=[sid, "nope", sid]) == [got]

    events = []
    while batch := sub.fetch(batch=1000, timeout=0.2):
        events += [d.event for d in batch if d.event.data.get("incident_id") == inc.id]
    assert [e.subject.rsplit(".", 1)[-1] for e in events] == ["receive", "register", "dispatch"]
    assert all(e.context.user_id == str(inc.reporter_user_id) for e in events)


def test_address_string_and_address_id_locate_the_request(client, city):
    b = _fresh_building(city)
    r = _post(client, city, lat=None, long=None, address_string=b.address.replace("上海市徐汇区", ""))
    assert r.status_code == 200, r.text
    got = client.get(f"{BASE}/requests/{r.json()[0]['service_request_id']}.json").json()[0]
    assert (got["lat"], got["long"], got["address_id"]) == (b.lat, b.lon, b.id)
    b2 = _fresh_building(city)  # multipart/form-data works as well as x-www-form-urlencoded
    fields = {"api_key": city.tokens["citizen"], "service_code": "02004", "address_id": str(b2.id),
              "description": _unique("人行道地砖松动翘起"), "attribute[location_detail]": "北门台阶"}
    r = client.post(f"{BASE}/requests.xml", files={k: (None, v) for k, v in fields.items()})
    assert r.status_code == 200 and r.headers["content-type"] == "text/xml; charset=utf-8", r.text
    sid = ET.fromstring(r.content).findtext("request/service_request_id")
    got = client.get(f"{BASE}/requests/{sid}.json").json()[0]
    assert (got["lat"], got["long"], got["address_id"]) == (b2.lat, b2.lon, b2.id)
    assert got["address"] == f"{b2.address}（北门台阶）"


def test_a_request_without_description_gets_the_service_name(client, city):
    r = _post(client, city, description=None, service_code="02006", jurisdiction_id="xuhui.gov.cn")
    assert r.status_code == 200, r.text
    got = client.get(f"{BASE}/requests/{r.json()[0]['service_request_id']}.json").json()[0]
    assert got["description"].startswith("护栏损坏")


def test_xml_text_is_escaped(client, city):
    text = _unique("井盖<缺失> & \"危险\"，\n第二行")
    sid = _post(client, city, service_code="02001", description=text).json()[0]["service_request_id"]
    root = ET.fromstring(client.get(f"{BASE}/requests/{sid}.xml").content)
    assert root.findtext("request/description") == text


# ---------------------------------------------------------------- lists, paging, status, extensions


def test_list_by_service_date_status_and_pages(served, o311, client, city):
    since = utcnow() - timedelta(seconds=1)
    ids = [_post(client, city, service_code=code, description=_unique(text)).json()[0]["service_request_id"]
           for code, text in (("06007", "商场停车场乱收费，一小时收二十元"), ("06007", "停车费发票开不出来"),
                              ("01004", "商户把厨余垃圾混投进其他垃圾桶"))]
    window = {"start_date": _w3c(since), "end_date": _w3c(utcnow() + timedelta(minutes=1))}

    listed = o311.list_requests(service_code="06007,01004", status="open", **window)
    assert [r["service_request_id"] for r in listed] == ids[::-1]  # newest first
    listed = GeoReport(served).get_service_requests(service_code="06007", **window)
    assert [r["service_request_id"] for r in listed] == ids[1::-1]
    listed = GeoReport(served, output_format="xml").get_service_requests(service_code="01004", **window)
    listed = _as_list(listed)  # xmltodict: one <request> is a dict, several a list
    assert [r["service_request_id"] for r in listed] == ids[2:]
    assert GeoReport(served).get_service_requests(service_request_id=",".join(ids)) == o311.list_requests(
        service_request_ids=ids)

    pages = [client.get(f"{BASE}/requests.json", params={"service_code": "06007", "page_size": 1, "page": n,
                                                         **window}).json() for n in (1, 2, 3)]
    assert [[r["service_request_id"] for r in p] for p in pages] == [[ids[1]], [ids[0]], []]
    # a '+' left unencoded in the query string arrives as a space and is still read as the offset
    raw = client.get(f"{BASE}/requests.json?service_code=06007&start_date={_w3c(since)}").json()
    assert {r["service_request_id"] for r in raw} == set(ids[:2])

    _close_by_handler(client, city, ids[2], "已上门劝导商户分类投放")
    closed = o311.list_requests(service_code="06007,01004", status="closed", **window)
    assert [r["service_request_id"] for r in closed] == ids[2:]
    assert closed[0]["status"] == "closed" and "已上门劝导商户分类投放" in closed[0]["status_notes"]
    assert closed[0]["expected_datetime"] and closed[0]["service_notice"] is None
    still_open = o311.list_requests(service_code="06007,01004", status="open,", **window)
    assert [r["service_request_id"] for r in still_open] == ids[1::-1]
    both = o311.list_requests(service_code="06007,01004", status="open,closed", **window)
    assert len(both) == 3

    ext = client.get(f"{BASE}/requests/{ids[2]}.json", params={"extensions": "true"}).json()[0]
    types = [n["type"] for n in ext["notes"]]
    assert types[0] == "opened" and types[-1] == "closed" and set(types[1:-1]) == {"activity"}
    assert len(types) >= 5
    assert "已上门劝导商户分类投放" in ext["notes"][-1]["description"]
    assert ext["notes"][-2]["description"] == "已上门劝导商户分类投放"  # the department's result
    assert all(n["datetime"].endswith("+08:00") and n["summary"] for n in ext["notes"])
    assert ext["extended_attributes"]["detailed_status"] == "closed"
    assert ext["extended_attributes"]["channel"] == "open311"
    x = ET.fromstring(client.get(f"{BASE}/requests.xml", params={"service_request_id": ids[2],
                                                                 "extensions": "true"}).content)
    assert [n.findtext("type") for n in x.findall("request/notes/note")][-1] == "closed"
    assert x.findtext("request/extended_attributes/detailed_status") == "closed"


def test_the_default_window_is_the_last_90_days(client, city):
    sid = _post(client, city, service_code="02007", description=_unique("公交候车亭玻璃碎了")).json()[0]
    listed = client.get(f"{BASE}/requests.json", params={"service_code": "02007"}).json()
    assert sid["service_request_id"] in [r["service_request_id"] for r in listed]
    old = {"start_date": "2020-01-01", "end_date": "2020-03-01"}  # whole days, local time
    assert client.get(f"{BASE}/requests.json", params={"service_code": "02007", **old}).json() == []
    until = (utcnow() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")  # 90 days up to a month ago
    r = client.get(f"{BASE}/requests.json", params={"service_code": "02007", "end_date": until})
    assert r.status_code == 200 and r.json() == []


def test_a_merged_duplicate_follows_the_request_it_joined(client, city):
    b, phone = _fresh_building(city), _phone()
    text = _unique("共享单车把商场门口人行道堵死了")
    first = _post(client, city, building=b, service_code="03004", description=text, phone=phone).json()[0]
    again = text + "，还没人来管"  # a new report of the same problem (the same one again would be a resubmission)
    second = _post(client, city, building=b, service_code="03004", description=again, phone=phone).json()[0]
    one, two = first["service_request_id"], second["service_request_id"]
    assert one != two and one in second["service_notice"]
    got = client.get(f"{BASE}/requests/{two}.json", params={"extensions": "true"}).json()[0]
    assert got["status"] == "open" and got["status_notes"].startswith(f"merged into {one}")
    assert got["extended_attributes"]["merged_into"] == one
    parent = client.get(f"{BASE}/requests/{one}.json").json()[0]
    assert got["agency_responsible"] == parent["agency_responsible"]
    _close_by_handler(client, city, one, "已清理并规范停放")
    got = client.get(f"{BASE}/requests/{two}.json", params={"extensions": "true"}).json()[0]
    assert got["status"] == "closed" and "已清理并规范停放" in got["status_notes"]
    assert got["notes"][-1]["type"] == "closed"
    closed = client.get(f"{BASE}/requests.json", params={"service_code": "03004", "status": "closed"}).json()
    assert {one, two} <= {r["service_request_id"] for r in closed}
    opened = client.get(f"{BASE}/requests.json", params={"service_code": "03004", "status": "open"}).json()
    assert not {one, two} & {r["service_request_id"] for r in opened}


# ---------------------------------------------------------------- errors


def _error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    if r.headers["content-type"].startswith("text/xml"):
        root = ET.fromstring(r.content)
        assert root.tag == "errors" and root.findtext("error/code") == str(status)
        text = root.findtext("error/description")
    else:
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        (err,) = r.json()
        assert err["code"] == status
        text = err["description"]
    for w in words:
        assert w in text, text
    return text


POST_ERRORS = [
    ({"api_key": None}, 403, ["api_key is missing"]),
    ({"api_key": "cb_not-a-token"}, 403, ["api_key was not accepted", "not known"]),
    ({"service_code": None}, 400, ["service_code is missing"]),
    ({"service_code": "99999"}, 404, ["'99999' was not found", "services.json"]),
    ({"lat": None, "long": None}, 400, ["no location", "address_string"]),
    ({"long": None}, 400, ["long is missing", "together"]),
    ({"lat": "north"}, 400, ["'north' is not a number"]),
    ({"lat": "nan"}, 400, ["outside"]),
    ({"lat": "121.43", "long": "31.16"}, 400, ["swapped"]),
    ({"lat": "39.9", "long": "116.4"}, 400, ["outside the district"]),
    ({"lat": None, "long": None, "address_string": "火星路999号"}, 400, ["matches no building"]),
    ({"address_id": "3号楼"}, 400, ["address_id", "whole number"]),
    ({"address_id": "99999999"}, 400, ["not a building"]),
    ({"address_id": "99999999999"}, 400, ["whole number"]),
    ({"attribute[colour]": "red"}, 400, ["no attribute 'colour'", "priority"]),
    ({"attribute[priority]": "asap"}, 400, ["'asap' is not one of", "urgent (紧急)"]),
    ({"attribute[priority]": ["urgent", "low"]}, 400, ["sent 2 times"]),
    ({"attribute": "urgent"}, 400, ["attribute[code]=value"]),
    ({"attribute[location_detail]": "x" * 101}, 400, ["at most 100"]),
    ({"description": "x" * 4001}, 400, ["4,001 characters", "at most 4,000"]),
    ({"description": "bad\x00byte"}, 400, ["control characters"]),
    ({"phone": "12345"}, 400, ["phone", "mainland"]),
    ({"media_url": "ftp://example.org/a.jpg"}, 400, ["http(s) URL"]),
    ({"first_name": "x" * 20, "last_name": "y" * 20}, 400, ["at most 32"]),
    ({"lat": None, "long": None, "address_string": "路" * 201}, 400, ["at most 200"]),
    ({"email": "a\nb@example.org"}, 400, ["email", "line breaks"]),
]


@pytest.mark.parametrize("fields,status,words", POST_ERRORS, ids=[str(list(f)) for f, _, _ in POST_ERRORS])
def test_post_errors_say_what_to_fix_and_store_nothing(client, city, fields, status, words):
    before = _count(city)
    _error(_post(client, city, **fields), status, *words)
    assert _count(city) == before


def test_errors_in_xml_and_as_problem_json(client, city):
    text = _error(_post(client, city, "xml", api_key=None), 403, "api_key is missing")
    assert "citybase API token" in text
    r = client.post(f"{BASE}/requests.json", data={"service_code": "02002"},
                    headers={"Accept": "application/problem+json"})
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    p = r.json()
    assert p["status"] == 403 and p["detail"] == "api_key is missing" and "token" in p["fix"]
    assert p["instance"] == f"{BASE}/requests.json" and p["title"] == "Forbidden"
    r = client.get(f"{BASE}/services/99999.xml", headers={"Accept": "application/problem+json, text/xml"})
    assert r.status_code == 404 and r.json()["status"] == 404


def test_a_post_must_be_a_form(client, city):
    before = _count(city)
    fields = {"api_key": city.tokens["citizen"], "service_code": "02002"}
    r = client.post(f"{BASE}/requests.json", json=fields)
    _error(r, 400, "not a form", "x-www-form-urlencoded")
    r = client.post(f"{BASE}/requests.json", data=fields,
                    files={"media": ("p.jpg", b"\xff\xd8\xff\xe0 not really a photo", "image/jpeg")})
    _error(r, 400, "'media' is a file", "media_url")
    r = client.post(f"{BASE}/requests.json", content=b"--x\r\nbroken",
                    headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code in (400, 403)
    assert _count(city) == before


@pytest.mark.parametrize("method,path", [
    ("GET", "discovery.yaml"), ("GET", "services.html"), ("GET", "services/02002.txt"),
    ("GET", "requests.csv"), ("POST", "requests.csv"), ("GET", "requests/2026.pdf"),
    ("GET", "tokens/abc.yml"), ("GET", "services.JSONP"),
])
def test_an_unknown_format_is_404(client, method, path):
    _error(client.request(method, f"{BASE}/{path}"), 404, "no format", ".xml or .json")


def test_unknown_resources_are_404(client):
    _error(client.get(f"{BASE}/services/99999.json"), 404, "'99999' was not found")
    _error(client.get(f"{BASE}/requests/1999010100000001.json"), 404, "no service request '1999010100000001'")
    _error(client.get(f"{BASE}/requests/%00%01.xml"), 404, "no service request")
    _error(client.get(f"{BASE}/tokens/{uuid.uuid4().hex}.json"), 404, "no service request was created")
    _error(client.get(f"{BASE}/tokens/x%00y.json"), 404, "token")


@pytest.mark.parametrize("params,words", [
    ({"start_date": "yesterday"}, ["start_date 'yesterday' is not a W3C datetime"]),
    ({"end_date": "2026-02-30T00:00:00Z"}, ["not a valid date"]),
    ({"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-02-01T00:00:00Z"}, ["after end_date"]),
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
     ["spans 151 days", "at most 90"]),
    ({"status": "pending"}, ["'pending' is neither open nor closed"]),
    ({"service_code": "02002,99999"}, ["'99999' is not a service"]),
    ({"page": "0"}, ["page '0'"]),
    ({"page_size": "5000"}, ["page_size", "1,000"]),
    ({"page": "-1"}, ["page '-1'"]),
    ({"extensions": "maybe"}, ["extensions 'maybe' is not true or false"]),
    ({"service_request_id": ",".join(str(i) for i in range(201))}, ["at most 200"]),
])
def test_bad_list_parameters_are_400(client, params, words):
    _error(client.get(f"{BASE}/requests.json", params=params), 400, *words)
    _error(client.get(f"{BASE}/requests.xml", params=params), 400, *words)


def test_a_bad_bearer_token_on_a_public_route_is_an_open311_403(client):
    r = client.get(f"{BASE}/services.xml", headers={"Authorization": "Bearer cb_wrong"})
    _error(r, 403, "not known")


GARBAGE = ["", " ", "\x00", "\u202e", "💥" * 40, "x" * 5000, "-1", "1e309", "NaN", "<a>&'\"", "[]"]


def test_nothing_a_client_sends_is_a_500(client, city):
    fields = ["service_request_id", "service_code", "start_date", "end_date", "status", "page", "page_size",
              "extensions"]
    for g in GARBAGE:
        for f in fields:
            narrow = {} if f == "service_code" else {"service_code": "09008"}  # keep the lists short
            r = client.get(f"{BASE}/requests.json", params={**narrow, f: g})
            assert r.status_code < 500, (f, g, r.text[:200])
        segment = quote(g, safe="") or "x"
        for p in (f"services/{segment}.json", f"requests/{segment}.xml", f"tokens/{segment}.json",
                  f"{segment}.json"):
            r = client.get(f"{BASE}/{p}")
            assert r.status_code < 500, (p, r.text[:200])
    for g in GARBAGE[2:8]:
        for f in ["api_key", "service_code", "lat", "address_string", "address_id", "description",
                  "media_url", "phone", "first_name", "attribute[priority]", "attribute[location_detail]"]:
            r = _post(client, city, **{f: g})
            assert r.status_code < 500, (f, g, r.text[:200])


# ---------------------------------------------------------------- text, limits and faults the client can tell apart


def _raw(client, city, body: bytes, content_type="application/x-www-form-urlencoded", fmt="json"):
    return client.post(f"{BASE}/requests.{fmt}", content=body, headers={"Content-Type": content_type})


def _fields(city, **extra) -> dict[str, str]:
    b = _fresh_building(city)
    return {"api_key": city.tokens["citizen"], "service_code": "02002", "lat": str(b.lat), "long": str(b.lon),
            **extra}


def test_a_raw_utf8_form_body_is_stored_as_sent(client, city):
    # what `curl -d description=描述…` sends: UTF-8 bytes, unencoded, and no charset (the spec: assumed UTF-8)
    text = _unique("路灯不亮，描述：晚上很黑 ☂")
    fields = _fields(city, description=text, first_name="三", last_name="张")
    body = "&".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8")
    r = _raw(client, city, body)
    assert r.status_code == 200, r.text
    inc = _incident(city, r.json()[0]["service_request_id"])
    assert inc.description == text and inc.reporter_name == "张三"
    # the same text percent-encoded, and in a multipart body, arrives the same
    for content, ctype in [(urlencode({**_fields(city), "description": text + "②"}).encode(), None),
                           (None, "multipart")]:
        if ctype is None:
            r = _raw(client, city, content)
        else:
            r = client.post(f"{BASE}/requests.json", files={k: (None, v.encode()) for k, v in
                                                             _fields(city, description=text + "③").items()})
        assert r.status_code == 200, r.text
        assert _incident(city, r.json()[0]["service_request_id"]).description.startswith(text)


def test_a_declared_charset_is_honoured(client, city):
    text = _unique("井盖缺失")
    body = urlencode(_fields(city, description=text), encoding="gbk").encode("ascii")
    r = _raw(client, city, body, "application/x-www-form-urlencoded; charset=GBK")
    assert r.status_code == 200, r.text
    assert _incident(city, r.json()[0]["service_request_id"]).description == text
    _error(_raw(client, city, body, "application/x-www-form-urlencoded; charset=klingon"), 400, "klingon")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_invalid_utf8_is_refused_not_stored_as_replacement_characters(client, city, fmt):
    before = _count(city)
    good = "&".join(f"{k}={v}" for k, v in _fields(city).items()).encode()
    for body in (good + b"&description=\xe8\xb7\xaf\xff", good + b"&description=%E8%B7%FF",
                 good.replace(b"api_key", b"api\xc0key")):
        _error(_raw(client, city, body, fmt=fmt), 400, "not valid UTF-8", "%E6%8F%8F")
    boundary = "b0undary"
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="description"\r\n\r\n').encode()
    multipart = b"".join((f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n').encode()
                         for k, v in _fields(city).items()) + part + b"\xe8\xb7\r\n" + f"--{boundary}--\r\n".encode()
    _error(_raw(client, city, multipart, f"multipart/form-data; boundary={boundary}", fmt), 400, "not valid UTF-8")
    assert _count(city) == before


def test_the_specs_4000_characters_of_description_are_kept(client, city):
    text = _unique("人行道")
    text += "长" * (4000 - len(text))
    r = _post(client, city, description=text)
    assert r.status_code == 200, r.text
    got = client.get(f"{BASE}/requests/{r.json()[0]['service_request_id']}.json").json()[0]
    assert got["description"] == text and len(got["description"]) == 4000


@pytest.mark.parametrize("method,path,status,fmt", [
    ("GET", "nothing.json", 404, "json"), ("GET", "nothing/at/all.xml", 404, "xml"), ("GET", "", 404, "json"),
    ("DELETE", "requests.json", 405, "json"), ("PUT", "services.xml", 405, "xml"),
    ("POST", "services/02002.json", 405, "json"), ("PATCH", "requests/2026.xml", 405, "xml"),
])
def test_unknown_paths_and_methods_answer_in_the_specs_format(client, method, path, status, fmt):
    r = client.request(method, f"{BASE}/{path}")
    text = _error(r, status)
    assert r.headers["content-type"] == ("text/xml; charset=utf-8" if fmt == "xml" else
                                         "application/json; charset=utf-8")
    if status == 405:
        assert method in text and r.headers["allow"] in ("GET", "POST", "GET, POST")
    else:
        assert "discovery" in text
