"""The registries' list and detail endpoints, through the API test mixins (access by role, paging, 404, 422)."""

from __future__ import annotations

from datetime import date, timedelta

from citybase.core.ids import id_check_char, org_code_check_char, uscc_check_char
from citybase.registry.models import Department, LegalEntity, Person
from citybase.registry.schemas import DepartmentRead, EntityRead, PersonRead
from tests.api_mixins import CreateTests, DetailTests, ListTests, PagedListTests, serial

STAFF = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer")
PERSON_READERS = ("admin", "dispatcher", "handler", "grid_inspector", "data_officer")


def fresh_id_number() -> str:
    """A valid GB 11643 number of someone born in 1901, a year the demo generator never fills."""
    n = serial()
    born = date(1901, 1, 1) + timedelta(days=n // 900)
    first17 = f"310104{born:%Y%m%d}{100 + n % 900:03d}"
    return first17 + id_check_char(first17)


def fresh_uscc() -> str:
    body = f"MX{serial():06d}"
    first17 = "91310104" + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


class TestPersons(PagedListTests, DetailTests, CreateTests):
    endpoint = "/api/v1/persons"
    detail = "/api/v1/persons/{key}"
    schema = PersonRead
    model = Person
    roles = {"list": PERSON_READERS, "detail": PERSON_READERS, "create": ("data_officer",)}
    invalid_query = {"building_id": "not-a-number"}
    invalid_data = {"household_no": "", "sex": "X"}

    def create_data(self, client, city):
        return {"id_number": fresh_id_number(), "name": "测试员", "household_no": f"HM{serial():08d}"}


class TestLegalEntities(PagedListTests, DetailTests, CreateTests):
    endpoint = "/api/v1/legal-entities"
    detail = "/api/v1/legal-entities/{key}"
    schema = EntityRead
    model = LegalEntity
    roles = {"list": STAFF, "detail": STAFF, "create": ("data_officer",)}
    invalid_data = {"registered_capital": -1}

    def create_data(self, client, city):
        return {"uscc": fresh_uscc(), "name": "测试科技有限公司", "entity_type": "enterprise", "industry_code": "I",
                "industry": "信息传输、软件和信息技术服务业", "legal_rep_name": "丙",
                "legal_rep_id_number": fresh_id_number(), "registered_capital": 100, "established_on": "2020-01-01"}


class TestDepartments(ListTests, DetailTests):
    endpoint = "/api/v1/departments"
    detail = "/api/v1/departments/{key}"
    lookup = "code"
    unknown_key = "NOSUCHDEPARTMENT"
    schema = DepartmentRead
    model = Department
    roles = {"list": STAFF, "detail": STAFF}
