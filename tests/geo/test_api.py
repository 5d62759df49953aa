"""The spatial base's list and detail endpoints, through the API test mixins (access by role, paging, 404, 422)."""

from __future__ import annotations

from citybase.geo.models import Building
from citybase.geo.schemas import AreaRead, BuildingRead
from tests.api_mixins import DetailTests, ListTests, PagedListTests

STAFF = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer")


class TestAreas(ListTests, DetailTests):
    endpoint = "/api/v1/areas"
    detail = "/api/v1/areas/{key}"
    lookup = "code"
    unknown_key = "999999999"
    schema = AreaRead
    roles = {"list": ("public",), "detail": ("public",)}
    invalid_query = {"level": "planet"}


class TestBuildings(PagedListTests, DetailTests):
    endpoint = "/api/v1/buildings"
    detail = "/api/v1/buildings/{key}"
    schema = BuildingRead
    model = Building
    roles = {"list": STAFF, "detail": STAFF}
