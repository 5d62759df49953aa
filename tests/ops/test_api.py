"""The ops catalogue and incidents through the API test mixins (access by role, paging, 404, 422)."""

from __future__ import annotations

from typing import ClassVar

from citybase.ops.catalogue.schemas import CategoryRead, RuleRead
from citybase.ops.intake.schemas import IntakeRead
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.schemas import IncidentDetail, IncidentRead
from tests.api_mixins import CreateTests, DeleteTests, DetailTests, ListTests, PagedListTests, serial

STAFF = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer")
ADMIN = ("admin",)


class TestCategories(ListTests):
    endpoint = "/api/v1/ops/categories"
    lookup = "code"
    schema = CategoryRead
    roles = {"list": ("public",)}


class TestRules(ListTests, DeleteTests):
    endpoint = "/api/v1/ops/rules"
    detail = "/api/v1/ops/rules/{key}"
    schema = RuleRead
    roles = {"list": STAFF, "create": ADMIN, "delete": ADMIN}
    invalid_data = {"hour_from": 25}

    def create_data(self, client, city):
        # a rule for one grid in the small hours: retired again at once (cleanup), so no routing test sees it
        dept = client.get("/api/v1/departments", headers=city.auth("admin")).json()[0]["code"]
        grid = client.get("/api/v1/areas", params={"level": "grid"}).json()[-1]["code"]
        return {"category_code": None, "area_code": grid, "hour_from": 3, "hour_to": 4, "main_department": dept,
                "precedence": 1, "note": f"mixin {serial()}"}

    def cleanup(self, client, city, key):
        assert client.delete(f"/api/v1/ops/rules/{key}", headers=city.auth("admin")).status_code == 200


class TestIncidents(PagedListTests, DetailTests, CreateTests):
    endpoint = "/api/v1/ops/incidents"
    detail = "/api/v1/ops/incidents/{key}"
    schema = IncidentRead
    model = Incident
    create_schema = IntakeRead
    roles = {"list": STAFF, "detail": STAFF, "create": ("dispatcher", "admin")}
    invalid_data = {"description": "", "priority": "whenever"}
    _points: ClassVar[dict[str, tuple[float, float]]] = {}

    def created_key(self, body):
        return body["incident"]["id"]

    def create_data(self, client, city):
        if city.db.url not in self._points:  # the centre of the last grid, far from the loop tests' points
            g = client.get("/api/v1/areas", params={"level": "grid"}).json()[-1]
            self._points[city.db.url] = (g["center_lon"], g["center_lat"])
        lon, lat = self._points[city.db.url]
        return {"description": f"测试井盖缺失 {serial()}", "category_code": "01001", "lon": lon, "lat": lat,
                "priority": "normal"}

    def test_an_incident_reads_with_its_timeline(self, client, city):
        key = self.existing_key(client, city)
        r = client.get(f"/api/v1/ops/incidents/{key}", headers=city.auth("dispatcher"))
        assert IncidentDetail.model_validate(r.json()).timeline
