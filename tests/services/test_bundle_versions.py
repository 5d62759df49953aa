"""一件事 bundles are versioned like items, on both engines: an admin's edit (members, dependencies, name,
description) is the bundle's next version, its versions are listed, an application keeps the bundle version
it was started on (and the plan of the item versions it keeps), only admins write, and a bad bundle is a
problem+json naming each wrong member, in Chinese first and in English on request — never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from citybase.storage.migrate import downgrade_all, upgrade
from tests.conftest import ENGINES

BASE = "/api/v1/services"
PROBLEM = "application/problem+json"
T = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def api(client, city, services_tokens):  # noqa: ANN001
    def call(method: str, path: str, user: str | None, **kw):  # noqa: ANN202
        headers = {**(city.auth(user) if user else {}), **kw.pop("headers", {})}
        return client.request(method, BASE + path, headers=headers, **kw)

    return call


def _spec(bundle: dict, **changes) -> dict:  # noqa: ANN003
    return {"name": bundle["name"], "description": bundle["description"], "applicant_kind": bundle["applicant_kind"],
            "members": [{"item": m["item"], "after": m["after"]} for m in bundle["members"]], **changes}


def test_a_new_bundle_is_version_1_and_each_edit_its_next_version(api) -> None:  # noqa: ANN001
    body = {"code": "move-house", "name": "搬家一件事", "description": "户籍迁移与社保变更",
            "applicant_kind": "person",
            "members": [{"item": "XH-GA-001", "after": []}, {"item": "XH-RS-001", "after": ["XH-GA-001"]}]}
    r = api("POST", "/bundles", "admin", json=body)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["version"] == first["current_version"] == 1
    assert first["critical_path"][0] == "XH-GA-001" and first["created_by"]
    assert api("POST", "/bundles", "admin", json=body).status_code == 409

    members = [{"item": "XH-GA-001", "after": []}, {"item": "XH-RS-001", "after": []},
               {"item": "XH-RS-007", "after": ["XH-GA-001"]}]
    r = api("PUT", "/bundles/move-house", "admin", json=_spec(first, members=members, name="搬家一件事（新）"))
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["version"] == second["current_version"] == first["current_version"] + 1
    assert second["name"] == "搬家一件事（新）"
    assert [m["item"] for m in second["members"]] == ["XH-GA-001", "XH-RS-001", "XH-RS-007"]
    assert second["groups"][0] == ["XH-GA-001", "XH-RS-001"]  # 社保 no longer waits for 户籍

    versions = api("GET", "/bundles/move-house/versions", None).json()
    assert [v["version"] for v in versions][-2:] == [first["version"], second["version"]]
    assert versions[-2]["name"] == first["name"] and len(versions[-2]["members"]) == 2
    old = api("GET", "/bundles/move-house", None, params={"version": first["version"]}).json()
    assert old["version"] == first["version"] and old["critical_path"] == first["critical_path"]
    assert api("GET", "/bundles/move-house", None).json()["version"] == second["version"]
    r = api("GET", "/bundles/move-house", None, params={"version": 999})
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)


def test_an_application_keeps_the_bundle_version_it_was_started_on(api) -> None:  # noqa: ANN001
    bundle = api("GET", "/bundles/retirement", None).json()
    draft = api("POST", "/applications", "citizen", json={"bundle": "retirement"}).json()
    assert draft["bundle_version_id"] is not None
    kept = draft["bundle"]
    assert kept["code"] == "retirement" and kept["version"] == bundle["version"]
    assert kept["critical_path"] == bundle["critical_path"] and kept["promised_days"] == bundle["promised_days"]

    # the admin drops the member on the critical path's end and removes every dependency
    last = bundle["critical_path"][-1]
    members = [{"item": m["item"], "after": []} for m in bundle["members"] if m["item"] != last]
    r = api("PUT", "/bundles/retirement", "admin", json=_spec(bundle, members=members, description="新版说明"))
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["version"] == bundle["version"] + 1 and last not in [m["item"] for m in edited["members"]]

    again = api("GET", f"/applications/{draft['id']}", "citizen").json()
    assert again["bundle"]["version"] == bundle["version"] and again["bundle"]["current_version"] == edited["version"]
    assert again["bundle"]["critical_path"] == bundle["critical_path"]  # its own plan, from what it keeps
    assert again["form_schema"] == draft["form_schema"]
    assert [m["item"] for m in again["members"]] == [m["item"] for m in bundle["members"]]
    fresh = api("POST", "/applications", "citizen", json={"bundle": "retirement"}).json()
    assert fresh["bundle"]["version"] == edited["version"] and last not in [m["item"] for m in fresh["members"]]
    # submitted under the old version: its parts are the old version's members, with their dependencies
    api("PUT", "/bundles/retirement", "admin", json=_spec(bundle))  # back to the shipped members: a third version
    assert api("GET", "/bundles/retirement", None).json()["version"] == bundle["version"] + 2


def test_only_admins_write_bundles(api) -> None:  # noqa: ANN001
    bundle = api("GET", "/bundles/newborn", None).json()
    for user in (None, "citizen", "clerk-wjw", "window", "analyst"):  # the clients ask for English
        r = api("PUT", "/bundles/newborn", user, json=_spec(bundle))
        assert r.status_code in (401, 403), (user, r.status_code)
        assert r.headers["content-type"].startswith(PROBLEM)
    assert api("POST", "/bundles", "citizen", json={**_spec(bundle), "code": "x-y"}).status_code == 403
    assert api("GET", "/bundles/newborn", None).json()["version"] == bundle["version"]


@pytest.mark.parametrize(("members", "where", "zh", "en"), [
    ([{"item": "XH-NOPE-1", "after": []}], "members[0]", "没有政务服务事项 XH-NOPE-1", "no service item XH-NOPE-1"),
    ([{"item": "XH-GA-001", "after": ["XH-RS-001"]}], "members[0].after", "不在本一件事中", "which is not in the bundle"),
    ([{"item": "XH-GA-001", "after": ["XH-RS-001"]}, {"item": "XH-RS-001", "after": ["XH-GA-001"]}], "members",
     "循环", "form a cycle"),
    ([{"item": "XH-GA-001", "after": ["XH-GA-001"]}], "members", "循环", "form a cycle"),
    ([{"item": "XH-GA-001", "after": []}, {"item": "XH-GA-001", "after": []}], "members[1]", "重复", "twice"),
])
def test_a_bad_bundle_is_explained_in_the_users_language(api, members, where, zh, en) -> None:  # noqa: ANN001
    bundle = api("GET", "/bundles/newborn", None).json()
    body = _spec(bundle, members=members)
    r = api("PUT", "/bundles/newborn", "admin", json=body, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM), r.text
    problem = r.json()
    assert zh in problem["detail"] and any(e["where"] == f"body parameter '{where}'" for e in problem["errors"])
    r = api("PUT", "/bundles/newborn", "admin", json=body, headers={"Accept-Language": "en"})
    assert r.status_code == 422 and en in r.json()["detail"]
    r = api("POST", "/bundles", "admin", json={**body, "code": "bad-one"})
    assert r.status_code == 422 and api("GET", "/bundles/bad-one", None).status_code == 404
    assert api("GET", "/bundles/newborn", None).json()["version"] == bundle["version"]  # nothing stored


def test_a_bundle_for_firms_cannot_hold_an_item_only_persons_apply_for(api) -> None:  # noqa: ANN001
    bundle = api("GET", "/bundles/restaurant", None).json()
    members = [*({"item": m["item"], "after": m["after"]} for m in bundle["members"]), {"item": "XH-WJW-001"}]
    r = api("PUT", "/bundles/restaurant", "admin", json=_spec(bundle, members=members), headers={"Accept-Language": "zh"})
    assert r.status_code == 422 and "不面向" in r.json()["detail"]
    for bad in ({"members": []}, {"members": "XH-GA-001"}, {"name": "x"}, {"applicant_kind": "alien"}):
        r = api("PUT", "/bundles/restaurant", "admin", json={**_spec(bundle), **bad})
        assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM), (bad, r.text)


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_the_migration_makes_each_bundle_version_1_and_applications_keep_it(empty_db) -> None:  # noqa: ANN001
    upgrade(empty_db.engine, "0018")
    members = '[{"item": "XH-GA-001", "after": []}]'
    with empty_db.engine.begin() as c:
        c.execute(text("INSERT INTO services_bundles (id, code, name, description, applicant_kind, members, created_at) "
                       "VALUES (7, 'move', '搬家一件事', '说明', 'person', :m, :t)"), {"m": members, "t": T})
        c.execute(text(
            "INSERT INTO services_applications (id, code, status, bundle_id, applicant_kind, filed_by, channel, members, "
            "form, prefilled, exemptions, consent, provided, promised_days, created_at, updated_at, version) VALUES "
            "(1, 'XH1', 'draft', 7, 'person', 't', 'online', '[]', '{}', '[]', '[]', '[]', '[]', 5, :t, :t, 1)"),
            {"t": T})
    upgrade(empty_db.engine)
    with empty_db.engine.connect() as c:
        assert c.execute(text("SELECT code, current_version FROM services_bundles")).all() == [("move", 1)]
        v = c.execute(text("SELECT id, bundle_id, version, name, description, applicant_kind, members, created_by "
                           "FROM services_bundle_versions")).one()
        assert tuple(v[1:]) == (7, 1, "搬家一件事", "说明", "person", members, "system")
        assert c.execute(text("SELECT bundle_version_id FROM services_applications")).scalar() == v[0]
    downgrade_all(empty_db.engine)
