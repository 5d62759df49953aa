"""Deny by default: every route declares who may call it, and every route × role is walked."""

import re

import pytest
from fastapi import FastAPI

from citybase.api.app import api_routes, check_every_route_declares_access
from citybase.demo.accounts import DEMO_USERS
from citybase.security.deps import AllowKey, allow
from citybase.security.roles import ROLES

SAMPLE = {"package": "leaflet", "path": "leaflet.css", "format": "json"}  # Open311 routes really run


def _routes(app):
    return api_routes(app)


def _url(path):
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: SAMPLE.get(m.group(1), "99999"), path)


def test_an_app_with_an_undeclared_route_refuses_to_start():
    app = FastAPI()

    @app.get("/open")
    def open_route():
        return {}

    with pytest.raises(RuntimeError, match="/open"):
        check_every_route_declares_access(app)


def test_every_route_declares_its_roles(client):
    routes = _routes(client.app)
    assert len(routes) >= 20
    assert all(r.allow is not None for r in routes)
    assert {"/api/v1/persons", "/api/v1/locate", "/"} <= {r.path for r in routes}


def test_allow_rejects_unknown_roles():
    with pytest.raises(ValueError):
        allow("superuser")


def _call(client, city, route, method, role):
    """Call a route as a role: the bearer header, or for a route that takes its token as a parameter
    (``AllowKey``, e.g. Open311's api_key) that parameter in a form, with no other field."""
    if isinstance(route.allow, AllowKey):
        form = {route.allow.name: city.tokens[DEMO_USERS[role][0]]} if role else {}
        return client.request(method, _url(route.path), data=form)
    headers = city.auth(DEMO_USERS[role][0]) if role else {}
    return client.request(method, _url(route.path), headers=headers,
                          json={} if method in ("POST", "PUT", "PATCH") else None)


@pytest.mark.parametrize("role", [*ROLES, None])
def test_every_route_times_every_role(client, city, role):
    checked = keyed = 0
    for route in _routes(client.app):
        declared = route.allow
        for method in route.methods - {"HEAD", "OPTIONS"}:
            r = _call(client, city, route, method, role)
            permitted = declared.public or (role in declared.roles)
            where = f"{method} {route.path} as {role or 'anonymous'}"
            if permitted:
                assert r.status_code not in (401, 403), f"{where}: {r.status_code} {r.text[:200]}"
                assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:200]}"
            elif isinstance(declared, AllowKey):  # refused in the route's own format (Open311: the spec's 403)
                assert r.status_code == 403, f"{where}: {r.status_code} {r.text[:200]}"
                assert r.headers["content-type"] != "application/problem+json", where
            else:
                assert r.status_code == (403 if role else 401), where
                # in the route's own format: problem+json, or the standard's (NGSI-LD: application/json)
                assert r.headers["content-type"] == declared.error_media_type, where
            checked += 1
            keyed += isinstance(declared, AllowKey)
    assert checked >= 20
    assert keyed >= 1  # the Open311 POST is walked with its api_key, not skipped


def test_open311_post_declares_its_api_key_and_refuses_without_one(client, city):
    (post,) = [r for r in _routes(client.app) if r.path == "/open311/v2/requests.{format}" and "POST" in r.methods]
    assert isinstance(post.allow, AllowKey) and post.allow.name == "api_key"
    assert not post.allow.public and set(post.allow.roles) == set(ROLES)  # any account, never anonymous
    before = client.post("/open311/v2/requests.json", data={"service_code": "02002"})
    assert before.status_code == 403 and "api_key is missing" in before.json()[0]["description"]
    as_query = client.post("/open311/v2/requests.json", params={"api_key": city.tokens["citizen"]},
                           data={"service_code": "99999"})
    assert as_query.status_code == 404  # the key was taken from the query: the next check speaks


def test_unknown_and_revoked_tokens_are_refused(client, city):
    r = client.get("/api/v1/me", headers={"Authorization": "Bearer cb_not-a-token"})
    assert r.status_code == 401 and r.json()["detail"] == "the bearer token is not known"
    assert r.headers["www-authenticate"] == "Bearer"
    admin = city.auth("admin")
    user = client.post("/api/v1/users", json={"username": "temp-analyst", "display_name": "临时", "roles": ["analyst"]},
                       headers=admin).json()
    issued = client.post(f"/api/v1/users/{user['id']}/tokens", json={"name": "t"}, headers=admin).json()
    mine = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/v1/me", headers=mine).json()["username"] == "temp-analyst"
    listed = client.get(f"/api/v1/users/{user['id']}/tokens", headers=admin).json()
    assert [t["prefix"] for t in listed] == [issued["token"][:10]] and "token" not in listed[0]
    client.delete(f"/api/v1/users/{user['id']}/tokens/{issued['id']}", headers=admin)
    r = client.get("/api/v1/me", headers=mine)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_tokens_are_stored_hashed(city, client):
    from sqlalchemy.orm import Session

    from citybase.security.models import ApiToken

    with Session(city.engine) as s:
        stored = {t.token_hash for t in s.query(ApiToken)}
    assert city.tokens["admin"] not in stored
    assert all(len(h) == 64 for h in stored)


def test_creating_a_user_with_an_unknown_role_is_a_clear_error(client, city):
    r = client.post("/api/v1/users", json={"username": "x1", "display_name": "x", "roles": ["mayor"]},
                    headers=city.auth("admin"))
    assert r.status_code == 422 and "mayor" in r.json()["detail"]
