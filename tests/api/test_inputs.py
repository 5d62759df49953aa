"""Inputs a careless or hostile client sends get a 422 that names the field, never a 500, on both engines."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.geo.models import Building
from citybase.registry.models import LegalEntity


def _refused(r, *where: str) -> dict:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    for w in where:
        assert w in body["detail"], body["detail"]
    return body


def _json(client, path, raw: bytes, headers):
    return client.post(path, content=raw, headers={**headers, "content-type": "application/json"})


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_a_json_body_are_refused_naming_the_field(client, city, number):
    raw = b'{"description": "\xe8\xb7\xaf\xe7\x81\xaf\xe4\xb8\x8d\xe4\xba\xae", "lon": %s, "lat": 31.18}' % number.encode()
    body = _refused(_json(client, "/api/v1/ops/incidents", raw, city.auth("dispatcher")), "body parameter 'lon'",
                    "finite")
    assert body["errors"] == [{"where": "body parameter 'lon'",
                               "problem": "is not a finite number (JSON has no NaN or Infinity)"}]


def test_non_finite_numbers_are_refused_in_free_form_bodies_too(client, city):
    _refused(_json(client, "/api/v1/ops/classify", b'{"text": "x", "weight": [1, NaN]}', city.auth("dispatcher")),
             "body parameter 'weight.1'")


@pytest.mark.parametrize("path, raw, who, field", [
    ("/api/v1/ops/incidents", b'{"description": "\\ud800 broken", "lon": 121.4, "lat": 31.18}', "dispatcher",
     "description"),
    ("/api/v1/users", b'{"username": "surrogate", "display_name": "\\udfff", "roles": ["citizen"]}', "admin",
     "display_name"),
])
def test_a_lone_surrogate_is_refused_naming_the_field(client, city, path, raw, who, field):
    _refused(_json(client, path, raw, city.auth(who)), f"body parameter '{field}'", "surrogate")


def test_refused_inputs_are_echoed_only_as_json_can_carry_them():
    # the 422 handler echoed the raw input: NaN or a lone surrogate made the 422 itself fail as a 500
    from citybase.api.problems import _echo

    assert [_echo(v) for v in (float("nan"), float("inf"), "\ud800", 2.5, 7, None)] == [None, None, None, 2.5, 7, None]
    assert len(_echo("x" * 100_000)) == 201


BIG = [2**31, 2**63, 10**30]
ID_PATHS = [
    ("/api/v1/buildings/{n}", "dispatcher"), ("/api/v1/persons/{n}", "dispatcher"),
    ("/api/v1/legal-entities/{n}", "dispatcher"), ("/api/v1/users/{n}/tokens", "admin"),
    ("/api/v1/ops/incidents/{n}", "dispatcher"), ("/api/v1/ops/webhooks/{n}/deliveries", "admin"),
]


@pytest.mark.parametrize("n", BIG)
@pytest.mark.parametrize("path, who", ID_PATHS)
def test_ids_beyond_32_bits_in_a_path_are_refused(client, city, path, who, n):
    _refused(client.get(path.format(n=n), headers=city.auth(who)), "path parameter")


@pytest.mark.parametrize("n", BIG)
def test_ids_beyond_32_bits_in_a_write_path_are_refused(client, city, n):
    _refused(client.post(f"/api/v1/ops/incidents/{n}/register", json={}, headers=city.auth("dispatcher")),
             "path parameter 'incident_id'")
    _refused(client.delete(f"/api/v1/ops/rules/{n}", headers=city.auth("admin")), "path parameter 'rule_id'")
    _refused(client.delete(f"/api/v1/users/1/tokens/{n}", headers=city.auth("admin")), "path parameter 'token_id'")


@pytest.mark.parametrize("n", BIG)
@pytest.mark.parametrize("path, param", [
    ("/api/v1/persons", "page"), ("/api/v1/persons", "building_id"), ("/api/v1/legal-entities", "page"),
    ("/api/v1/buildings", "page"), ("/api/v1/ops/incidents", "page"), ("/api/v1/ops/incidents", "department_id"),
    ("/api/v1/ops/incidents", "grid_id"), ("/api/v1/ops/supervisions", "department_id"), ("/api/v1/audit", "after"),
])
def test_pages_and_filters_beyond_their_bounds_are_refused(client, city, path, param, n):
    _refused(client.get(path, params={param: n}, headers=city.auth("admin")), f"query parameter '{param}'")


@pytest.mark.parametrize("n", BIG)
def test_ids_beyond_32_bits_in_a_body_are_refused(client, city, n):
    _refused(client.post("/api/v1/ops/incidents", json={"description": "井盖缺失", "building_id": n},
                         headers=city.auth("dispatcher")), "body parameter 'building_id'")
    _refused(client.post("/api/v1/users", json={"username": f"u{uuid.uuid4().hex[:8]}", "display_name": "x",
                                                "roles": ["citizen"], "department_id": n}, headers=city.auth("admin")),
             "body parameter 'department_id'")
    _refused(client.post("/api/v1/ops/incidents/1/dispatch", json={"main_department_id": n},
                         headers=city.auth("dispatcher")), "body parameter 'main_department_id'")


def test_the_largest_32_bit_id_is_an_ordinary_not_found(client, city):
    r = client.get(f"/api/v1/persons/{2**31 - 1}", headers=city.auth("dispatcher"))
    assert r.status_code == 404, r.text


def test_nul_characters_are_refused_in_query_path_and_body_on_both_engines(client, city):
    # PostgreSQL cannot store or compare a NUL; SQLite can: refusing it everywhere keeps the engines alike
    who = city.auth("dispatcher")
    _refused(client.get("/api/v1/persons", params={"name": "张\x00三"}, headers=who), "query parameter 'name'", "NUL")
    _refused(client.get("/api/v1/areas/310104%00"), "path parameter 'code'", "NUL")
    _refused(client.get("/api/v1/departments/x%00y", headers=who), "path parameter 'code'")
    _refused(client.post("/api/v1/ops/incidents", json={"description": "a\x00b", "lon": 121.43, "lat": 31.18},
                         headers=who), "body parameter 'description'", "NUL")
    _refused(client.post("/api/v1/ops/classify", json={"text": "路灯\x00"}, headers=who), "body parameter 'text'")


def test_nul_characters_are_refused_in_a_multipart_form(client, city):
    r = client.post("/api/v1/ops/inspections", data={"lon": "121.43", "lat": "31.18", "category_code": "01001",
                                                     "description": "井盖\x00缺失"},
                    files={"photo": ("", b"", "application/octet-stream")}, headers=city.auth("inspector"))
    _refused(r, "form field 'description'", "NUL")


@pytest.mark.parametrize("path, param", [
    ("/api/v1/legal-entities", "name"), ("/api/v1/ops/incidents", "q"), ("/api/v1/persons", "household_no"),
    ("/api/v1/buildings", "road"),
])
def test_search_and_filter_text_is_bounded(client, city, path, param):
    # SQLite refuses LIKE patterns past 50 KB: a long search text was a 500 there
    _refused(client.get(path, params={param: "a" * 60_000}, headers=city.auth("dispatcher")),
             f"query parameter '{param}'", "at most 200")
    assert client.get(path, params={param: "a" * 200}, headers=city.auth("dispatcher")).status_code == 200


@pytest.mark.parametrize("wildcard", ["%", "_", "%%", "/"])
def test_like_wildcards_in_a_name_search_are_plain_characters(client, city, wildcard):
    r = client.get("/api/v1/legal-entities", params={"name": wildcard}, headers=city.auth("dispatcher"))
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0  # no demo entity has a % or _ or / in its name; before, % matched all 600


def test_a_name_search_still_finds_a_part_of_the_name(client, city):
    with Session(city.engine) as s:
        name = s.scalar(select(LegalEntity.name).order_by(LegalEntity.id))
    r = client.get("/api/v1/legal-entities", params={"name": name[1:4]}, headers=city.auth("dispatcher"))
    assert name in [e["name"] for e in r.json()["items"]]


def test_like_wildcards_in_the_incident_search_are_plain_characters(client, city):
    with Session(city.engine) as s:
        b1, b2 = s.scalars(select(Building.id).order_by(Building.id.desc()).limit(2))
    who = city.auth("dispatcher")
    marker, plain = f"折扣100%_{uuid.uuid4().hex[:6]}", f"路灯不亮{uuid.uuid4().hex[:6]}"
    for text, building in ((f"商铺门口占道 {marker}", b1), (plain, b2)):
        r = client.post("/api/v1/ops/incidents", json={"description": text, "building_id": building}, headers=who)
        assert r.status_code == 201, r.text
    assert client.get("/api/v1/ops/incidents", params={"q": marker}, headers=who).json()["total"] == 1
    found = client.get("/api/v1/ops/incidents", params={"q": "%", "page_size": 500}, headers=who).json()["items"]
    assert any(marker in i["description"] for i in found)
    assert all("%" in i["description"] for i in found)  # before, % matched every incident
    assert client.get("/api/v1/ops/incidents", params={"q": "路灯_亮", "page_size": 500},
                      headers=who).json()["total"] == 0  # _ is not "any one character"

