"""Users and tokens through the API test mixins (access by role, 404, 422)."""

from __future__ import annotations

from typing import ClassVar

from citybase.security.schemas import TokenIssued, TokenRead, UserRead
from tests.api_mixins import CreateTests, DeleteTests, ListTests, serial

ADMIN = ("admin",)


class TestUsers(ListTests, CreateTests):
    endpoint = "/api/v1/users"
    schema = UserRead
    roles = {"list": ADMIN, "create": ADMIN}
    invalid_data = {"username": "has spaces", "roles": []}

    def create_data(self, client, city):
        return {"username": f"mixin-{serial()}", "display_name": "测试用户", "roles": ["analyst"]}


class TestTokens(ListTests, DeleteTests):
    endpoint = "/api/v1/users/{user_id}/tokens"
    detail = "/api/v1/users/{user_id}/tokens/{key}"
    schema = TokenRead
    create_schema = TokenIssued
    roles = {"list": ADMIN, "create": ADMIN, "delete": ADMIN}
    invalid_data = {"name": "x" * 65}
    _holders: ClassVar[dict[str, int]] = {}  # database url -> the user whose tokens these tests make

    def path_params(self, client, city):
        if city.db.url not in self._holders:
            r = client.post("/api/v1/users", json={"username": f"token-holder-{serial()}", "display_name": "令牌",
                                                   "roles": ["analyst"]}, headers=city.auth("admin"))
            assert r.status_code == 201, r.text
            self._holders[city.db.url] = r.json()["id"]
        return {"user_id": self._holders[city.db.url]}

    def create_data(self, client, city):
        return {"name": f"mixin-{serial()}"}

    def test_an_unknown_user_has_no_tokens_to_list(self, client, city):
        r = client.get("/api/v1/users/999999999/tokens", headers=city.auth("admin"))
        assert r.status_code == 404 and r.json()["fix"]
