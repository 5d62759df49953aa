"""API messages in the user's language: Chinese by default, English on Accept-Language: en or ?lang=en."""

import pytest
from fastapi.testclient import TestClient

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.core.i18n import catalogue
from tests.conftest import ENGINES


@pytest.fixture(params=ENGINES)
def plain(request, city):
    # a client that sends no Accept-Language, as curl does
    return TestClient(create_app(engine=city.engine, bus=InProcessBus()))


def test_errors_are_chinese_by_default(plain):
    r = plain.get("/api/v1/identifiers/check", params={"kind": "id_number", "value": "110105194912310021"})
    body = r.json()
    assert body["valid"] is False
    assert "第 18 位（校验码）是 '1'，应为 'X'" in body["error"] and "公民身份号码" in body["error"]
    r = plain.get("/api/v1/ops/incidents/999999999", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == catalogue("zh")["the bearer token is not known"]


@pytest.mark.parametrize("how", [{"headers": {"Accept-Language": "en-GB,en;q=0.9"}}, {"params": {"lang": "en"}}])
def test_english_on_request(plain, how):
    r = plain.get("/api/v1/ops/incidents/1", **how)
    assert r.status_code == 401
    assert r.json()["detail"] == "this endpoint needs a bearer token"
    assert r.json()["fix"].startswith("Send 'Authorization: Bearer <token>'")


def test_a_domain_error_with_fields_is_translated_with_them(plain, city):
    h = {"Authorization": f"Bearer {city.tokens['dispatcher']}"}
    zh = plain.get("/api/v1/ops/incidents/99999999", headers=h).json()
    en = plain.get("/api/v1/ops/incidents/99999999", headers={**h, "Accept-Language": "en"}).json()
    assert zh["detail"] == "没有工单 #99999999" and en["detail"] == "no incident #99999999"
    assert zh["title"] != en["title"]
