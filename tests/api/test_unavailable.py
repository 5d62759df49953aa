"""A database that refuses is the server's fault and passes: 503 with Retry-After, then service again.

The database is taken away for real: on PostgreSQL the test's own database stops accepting connections
(``ALLOW_CONNECTIONS false``) and its backends are terminated; on SQLite another connection holds the
file's exclusive lock. The internal API answers problem+json, Open311 its own error format; a report
retried with its Idempotency-Key once the database is back is filed exactly once."""

from __future__ import annotations

import sqlite3
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.geo.models import Building
from citybase.ops.workflow.models import Incident
from citybase.storage.db import make_engine
from tests.conftest import PG_ADMIN_URL

O311 = "/open311/v2"


@pytest.fixture
def app_client(city) -> Iterator[TestClient]:
    """An app of its own on the test city's database (so the shared app's connections are not touched)."""
    if city.db.kind == "postgresql":
        engine = make_engine(city.db.url, pool_size=2, max_overflow=2)
    else:  # a short busy timeout: the test waits for the lock to be refused, not for 30 s
        engine = create_engine(city.db.url, connect_args={"check_same_thread": False, "timeout": 0.2})
    yield TestClient(create_app(engine=engine, bus=InProcessBus()), headers={"Accept-Language": "en"})
    engine.dispose()


@contextmanager
def database_down(city) -> Iterator[None]:
    """The city's database refuses work until the block ends."""
    if city.db.kind == "postgresql":
        name = make_url(city.db.url).database
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        try:
            yield
        finally:
            with admin.connect() as c:
                c.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
    else:
        holder = sqlite3.connect(make_url(city.db.url).database, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()


def _building(city) -> Building:
    with Session(city.engine) as s:
        return s.scalars(select(Building).where(Building.use == "industrial").order_by(Building.id.desc())).first()


def _stored(city, description: str) -> int:
    with Session(city.engine) as s:
        return s.scalar(select(func.count()).select_from(Incident).where(Incident.description == description))


def _retry_after(r) -> int:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) > 0
    return int(r.headers["retry-after"])


def test_a_refusing_database_is_a_503_with_retry_after_and_a_retry_files_once(app_client, city):
    b = _building(city)
    description = f"厂区门口的窨井盖缺失（{uuid.uuid4().hex[:8]}）"
    body = {"description": description, "category_code": "02001", "lon": b.lon, "lat": b.lat}
    headers = {**city.auth("dispatcher"), "Idempotency-Key": str(uuid.uuid4())}
    form = {"api_key": city.tokens["citizen"], "service_code": "02001", "lat": b.lat, "long": b.lon,
            "description": description + "（市民）"}
    with database_down(city):
        r = app_client.post("/api/v1/ops/incidents", json=body, headers=headers)
        _retry_after(r)
        assert r.headers["content-type"] == "application/problem+json"
        p = r.json()
        assert p["status"] == 503 and p["type"].endswith("/unavailable") and "database" in p["detail"]
        assert "Retry" in p["fix"] and "Idempotency-Key" in p["fix"]

        r = app_client.post(f"{O311}/requests.json", data=form)
        _retry_after(r)
        (err,) = r.json()
        assert err["code"] == 503 and "database" in err["description"]
        r = app_client.post(f"{O311}/requests.xml", data=form)
        _retry_after(r)
        assert ET.fromstring(r.content).findtext("error/code") == "503"

        if city.db.kind == "postgresql":  # reads need the database too (SQLite readers pass the lock)
            _retry_after(app_client.get("/api/v1/users", headers=city.auth("admin")))
            _retry_after(app_client.get(f"{O311}/services.json"))
            _retry_after(app_client.get(f"{O311}/requests.xml", params={"service_code": "02001"}))

    assert _stored(city, description) == 0
    first = app_client.post("/api/v1/ops/incidents", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = app_client.post("/api/v1/ops/incidents", json=body, headers=headers)
    assert (again.status_code, again.content) == (201, first.content)
    assert _stored(city, description) == 1
    r = app_client.post(f"{O311}/requests.json", data=form)
    assert r.status_code == 200, r.text
    assert app_client.get(f"{O311}/services.json").status_code == 200
