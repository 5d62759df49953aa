"""The catalogue and application lists through the API test mixins (access by role, paging, 404, 422)."""

from __future__ import annotations

import pytest

from citybase.security.roles import PUBLIC
from citybase.services.models import Item
from citybase.services.schemas import ApplicationSummary, ItemSummary
from tests.api_mixins import CreateTests, DetailTests, PagedListTests, serial

pytestmark = pytest.mark.usefixtures("services_tokens")


class TestItems(PagedListTests, DetailTests, CreateTests):
    endpoint = "/api/v1/services/items"
    detail = "/api/v1/services/items/{key}"
    lookup = "code"
    unknown_key = "NO-SUCH-ITEM"
    schema = ItemSummary
    model = Item
    roles = {"list": (PUBLIC,), "detail": (PUBLIC,), "create": ("admin",)}
    invalid_query = {"page_size": "many"}
    invalid_data = {"statutory_days": -1, "online_level": "somewhat"}

    def create_data(self, client, city):
        dept = client.get("/api/v1/departments", headers=city.auth("admin")).json()[0]["code"]
        return {"code": f"XH-TEST-{serial():04d}", "name": "测试事项", "department": dept, "kind": "public_service",
                "applicant_kinds": ["person"], "statutory_days": 5, "committed_days": 2, "online_level": "full",
                "form": {"type": "object", "properties": {"applicant_name": {"type": "string", "title": "申请人姓名",
                                                                             "x-prefill": "person.name"}},
                         "required": ["applicant_name"]},
                "materials": [{"name": "居民身份证", "source": {"kind": "licence", "type": "id_card"}}]}


class TestApplications(PagedListTests):
    endpoint = "/api/v1/services/applications"
    schema = ApplicationSummary
    roles = {"list": ("citizen", "window_clerk", "clerk", "admin")}
    invalid_query = {"mine": "perhaps"}
