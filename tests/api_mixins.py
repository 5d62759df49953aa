"""API test mixins (after NetBox's ``APIViewTestCases``): a test class declares an endpoint, its schema and
table, who may call each operation, a ``create_data`` and whether the list is paged, and inherits the tests
every such endpoint owes its users. Every test runs on each engine through the ``city``/``client`` fixtures.

    class TestPersons(PagedListTests, DetailTests, CreateTests):
        endpoint = "/api/v1/persons"
        detail = "/api/v1/persons/{key}"
        schema = PersonRead
        model = Person
        roles = {"list": PERSON_READERS, "detail": PERSON_READERS, "create": ("data_officer",)}
        invalid_data = {"household_no": ""}

        def create_data(self, client, city): return {...}   # a new valid body on every call

What each mixin checks:

* every mixin, for its operation and every role plus anonymous: an allowed caller gets a 2xx (a read
  validates as ``schema``); anyone else gets 401 (anonymous) or 403 as problem+json whose ``fix`` says
  what to do (and, on 403, names the roles the endpoint is open to);
* ``ListTests``: the items validate; ``invalid_query`` (a query that is wrong) is a 422 naming its fields;
* ``PagedListTests``: ``page``/``page_size``/``total`` agree across pages and with the table (``model``,
  when the unfiltered list shows every row), the last page holds the rest, a page past the end is empty
  (or a 422 naming ``page``, if the API bounds it), and page 0 or page_size 0 is a 422 naming the parameter;
* ``DetailTests``: an existing key reads as ``schema``; an unknown key is a 404 problem+json with a fix;
* ``CreateTests``: ``create_data`` is created (2xx, read back as ``schema`` when ``create_schema`` says so);
  ``invalid_data`` merged into it is a 422 problem+json naming each field;
* ``DeleteTests``: a created object is deleted by an allowed caller; an unknown key is a 404 problem+json.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.demo.accounts import DEMO_USERS
from citybase.security.roles import PUBLIC, ROLES

EVERY_CALLER = [*ROLES, None]  # None: anonymous
PROBLEM = "application/problem+json"
_serial = itertools.count(1)


def serial() -> int:
    """A number never handed out before in this test run (for unique usernames, codes, ID numbers)."""
    return next(_serial)


def assert_problem(r, status: int, *, naming: Iterable[str] = ()) -> dict[str, Any]:
    """The response is a problem+json of this status with a detail and a fix, its detail naming each field."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["detail"] and body.get("fix"), body
    for name in naming:
        assert name in body["detail"], f"{name!r} not named in {body['detail']!r}"
    return body


class APITestCase:
    """What the mixins share: the declarations and the way to call the endpoint as a role."""

    endpoint: ClassVar[str]  # the list (and create) path; {placeholders} are filled by path_params()
    detail: ClassVar[str | None] = None  # the path of one object, with {key}
    schema: ClassVar[type[BaseModel]]  # what a listed item and a detail read validate as
    model: ClassVar[type | None] = None  # the table behind the list (for the total)
    lookup: ClassVar[str] = "id"  # the field of a read that fills {key}
    roles: ClassVar[Mapping[str, Iterable[str]]] = {}  # operation (list, detail, create, delete) -> roles or PUBLIC
    unknown_key: ClassVar[Any] = 999_999_999

    # --- what a test class may override

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        # nothing to test is no test (CI counts a skip as a failure): a list with no parameter that can be
        # wrong, or a create without invalid_data, does not get that test at all
        if getattr(cls, "invalid_query", None) is None:
            cls.test_a_wrong_list_query_is_a_422_naming_the_parameter = None
        if getattr(cls, "invalid_data", "unset") is None:
            cls.test_a_wrong_field_is_a_422_naming_it = None

    def path_params(self, client, city) -> dict[str, Any]:
        """Values for the endpoint's {placeholders} other than {key}."""
        return {}

    def created_key(self, body: dict[str, Any]) -> Any:
        """The key of the object a create answered with."""
        return body[self.lookup]

    def cleanup(self, client, city, key: Any) -> None:
        """Undo a create whose object must not stay in the shared city (a routing rule, say)."""

    # --- helpers

    def allowed(self, op: str, role: str | None) -> bool:
        roles = set(self.roles[op])
        return PUBLIC in roles or (role is not None and role in roles)

    def caller(self, op: str) -> str | None:
        """A role that may call the operation (anonymous only when no role may, for a public one)."""
        return next((r for r in ROLES if self.allowed(op, r)), None)

    @staticmethod
    def headers(city, role: str | None) -> dict[str, str]:
        return city.auth(DEMO_USERS[role][0]) if role else {}

    def url(self, client, city, template: str | None = None, **extra: Any) -> str:
        return (template or self.endpoint).format(**self.path_params(client, city), **extra)

    def check_access(self, op: str, role: str | None, r) -> None:
        where = f"{op} {r.request.method} {r.request.url.path} as {role or 'anonymous'}"
        if self.allowed(op, role):
            assert 200 <= r.status_code < 300, f"{where}: {r.status_code} {r.text[:300]}"
            return
        body = assert_problem(r, 403 if role else 401)
        if role:  # the fix says who may call it
            open_to = set(self.roles[op])
            assert all(x in body["fix"] for x in open_to), f"{where}: fix {body['fix']!r} names not {open_to}"


class ListTests(APITestCase):
    """GET ``endpoint`` (an unpaged list, or the first page of a paged one)."""

    list_params: ClassVar[dict[str, Any]] = {}  # query every list request sends
    invalid_query: ClassVar[dict[str, Any] | None] = None  # a query that must be refused, naming its keys

    def items(self, body: Any) -> list[dict[str, Any]]:
        return body["items"] if isinstance(body, dict) else body

    def list(self, client, city, role: str | None, **params: Any):
        return client.get(self.url(client, city), params={**self.list_params, **params},
                          headers=self.headers(city, role))

    @pytest.mark.parametrize("role", EVERY_CALLER)
    def test_list_is_open_to_exactly_its_roles(self, client, city, role):
        r = self.list(client, city, role)
        self.check_access("list", role, r)
        if r.status_code == 200:
            for item in self.items(r.json()):
                self.schema.model_validate(item)

    def test_a_wrong_list_query_is_a_422_naming_the_parameter(self, client, city):
        r = self.list(client, city, self.caller("list"), **self.invalid_query)
        assert_problem(r, 422, naming=self.invalid_query)


class PagedListTests(ListTests):
    """A list answered as ``Page``: items, total, page, page_size."""

    page_size: ClassVar[int] = 2
    invalid_query: ClassVar[dict[str, Any] | None] = {"page_size": 100_000}  # past every list's bound

    def page(self, client, city, page: int, page_size: int | None = None):
        return self.list(client, city, self.caller("list"), page=page, page_size=page_size or self.page_size)

    def test_pages_agree_on_the_total_and_hold_every_row_once(self, client, city):
        first = self.page(client, city, 1)
        assert first.status_code == 200, first.text
        body = first.json()
        total, size = body["total"], self.page_size
        assert (body["page"], body["page_size"]) == (1, size)
        assert len(body["items"]) == min(size, total)
        if self.model is not None and not self.list_params:
            with Session(city.engine) as s:
                assert total == s.scalar(select(func.count()).select_from(self.model))
        if total <= size:
            return
        second = self.page(client, city, 2).json()
        assert second["total"] == total and second["page"] == 2
        keys = [i[self.lookup] for i in body["items"]] + [i[self.lookup] for i in second["items"]]
        assert len(keys) == len(set(keys)), "a row on two pages"
        last = math.ceil(total / size)
        tail = self.page(client, city, last).json()
        assert tail["total"] == total and len(tail["items"]) == total - (last - 1) * size

    def test_a_page_past_the_end_is_empty_or_refused_by_name(self, client, city):
        total = self.page(client, city, 1).json()["total"]
        r = self.page(client, city, math.ceil(total / self.page_size) + 1)
        if r.status_code == 422:
            assert_problem(r, 422, naming=["page"])
        else:
            assert r.status_code == 200, r.text
            assert r.json()["items"] == [] and r.json()["total"] == total

    @pytest.mark.parametrize("param", ["page", "page_size"])
    def test_page_or_page_size_zero_is_a_422_naming_it(self, client, city, param):
        r = self.list(client, city, self.caller("list"), **{"page": 1, "page_size": self.page_size, param: 0})
        assert_problem(r, 422, naming=[f"'{param}'"])


class DetailTests(APITestCase):
    """GET ``detail`` for one object."""

    def existing_key(self, client, city) -> Any:
        """The key of an object the caller can read: the first listed, else one created."""
        r = client.get(self.url(client, city), headers=self.headers(city, self.caller("list")))
        assert r.status_code == 200, r.text
        body = r.json()
        items = body["items"] if isinstance(body, dict) else body
        if items:
            return items[0][self.lookup]
        assert isinstance(self, CreateTests), "nothing to read: declare create_data"
        return self.create(client, city, self.caller("create"))

    @pytest.mark.parametrize("role", EVERY_CALLER)
    def test_detail_is_open_to_exactly_its_roles(self, client, city, role):
        key = self.existing_key(client, city)
        r = client.get(self.url(client, city, self.detail, key=key), headers=self.headers(city, role))
        self.check_access("detail", role, r)
        if r.status_code == 200:
            assert self.schema.model_validate(r.json()).model_dump()[self.lookup] == key

    def test_an_unknown_key_is_a_404_problem(self, client, city):
        r = client.get(self.url(client, city, self.detail, key=self.unknown_key),
                       headers=self.headers(city, self.caller("detail")))
        assert_problem(r, 404)


class CreateTests(APITestCase):
    """POST ``endpoint`` with ``create_data``."""

    create_schema: ClassVar[type[BaseModel] | None] = None  # what a create answers (default: ``schema``)
    invalid_data: ClassVar[dict[str, Any] | None] = None  # fields that make a valid body wrong

    def create_data(self, client, city) -> dict[str, Any]:
        """A valid body, new on every call (unique where the API wants it unique)."""
        raise NotImplementedError

    def post(self, client, city, role: str | None, body: dict[str, Any]):
        return client.post(self.url(client, city), json=body, headers=self.headers(city, role))

    def create(self, client, city, role: str | None) -> Any:
        """Create one object as the role; its key."""
        r = self.post(client, city, role, self.create_data(client, city))
        assert 200 <= r.status_code < 300, r.text
        (self.create_schema or self.schema).model_validate(r.json())
        return self.created_key(r.json())

    @pytest.mark.parametrize("role", EVERY_CALLER)
    def test_create_is_open_to_exactly_its_roles(self, client, city, role):
        r = self.post(client, city, role, self.create_data(client, city))
        self.check_access("create", role, r)
        if 200 <= r.status_code < 300:
            (self.create_schema or self.schema).model_validate(r.json())
            self.cleanup(client, city, self.created_key(r.json()))

    def test_a_wrong_field_is_a_422_naming_it(self, client, city):
        body = {**self.create_data(client, city), **self.invalid_data}
        r = self.post(client, city, self.caller("create"), body)
        assert_problem(r, 422, naming=self.invalid_data)


class DeleteTests(CreateTests):
    """DELETE ``detail`` of an object made by ``create``."""

    @pytest.mark.parametrize("role", EVERY_CALLER)
    def test_delete_is_open_to_exactly_its_roles(self, client, city, role):
        key = self.create(client, city, self.caller("create"))
        r = client.delete(self.url(client, city, self.detail, key=key), headers=self.headers(city, role))
        self.check_access("delete", role, r)
        if not self.allowed("delete", role):
            self.cleanup(client, city, key)

    def test_deleting_an_unknown_key_is_a_404_problem(self, client, city):
        r = client.delete(self.url(client, city, self.detail, key=self.unknown_key),
                          headers=self.headers(city, self.caller("delete")))
        assert_problem(r, 404)
