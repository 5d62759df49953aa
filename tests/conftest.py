"""Shared fixtures: every storage test runs on SQLite and on the real PostgreSQL server.

A missing server skips its tests locally, but fails them when CITYBASE_REQUIRE_SERVICES=1
(as .ci/run sets), so CI can never pass by skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from citybase.demo.accounts import create_demo_users
from citybase.demo.generator import generate
from citybase.geo.service import reset_caches
from citybase.storage.db import make_engine
from citybase.storage.migrate import upgrade

PG_ADMIN_URL = os.environ.get("CITYBASE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE = os.environ.get("CITYBASE_REQUIRE_SERVICES") == "1"
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def unavailable(reason: str) -> None:
    """Skip, or fail when the services are required."""
    if REQUIRE:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@dataclass
class Database:
    kind: str
    url: str
    engine: Engine
    drop: object = None


def new_database(kind: str, tmp: Path) -> Database:
    """A fresh empty database of that kind (a new PostgreSQL database on the real server)."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'cb-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return Database(kind, url, make_engine(url))
    name = f"citybase_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        unavailable(f"PostgreSQL at {PG_ADMIN_URL}: {exc.__class__.__name__}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url, pool_size=5, max_overflow=5)

    def drop() -> None:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return Database(kind, url, engine, drop)


@pytest.fixture
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database per test, on the engine named by the test's ``engine_kind`` parameter."""
    db = new_database(request.param, tmp_path)
    yield db
    db.engine.dispose()
    if db.drop:
        db.drop()  # type: ignore[operator]


@dataclass
class City:
    db: Database
    tokens: dict[str, str]

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture(scope="session", params=ENGINES)
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """The small demo city, migrated and generated once per engine for the whole session."""
    tmp = tmp_path_factory.mktemp(f"city-{request.param}")
    db = new_database(request.param, tmp)
    upgrade(db.engine)
    generate(db.engine, size="small", seed=7)
    tokens = create_demo_users(db.engine, tmp)
    reset_caches()
    yield City(db, tokens)
    db.engine.dispose()
    if db.drop:
        db.drop()  # type: ignore[operator]


@pytest.fixture(scope="session")
def client_for():
    """A TestClient factory for a city (one app per engine)."""
    from fastapi.testclient import TestClient

    from citybase.api.app import create_app
    from citybase.bus.memory import InProcessBus

    class RelayingClient(TestClient):
        """Runs the app's outbox relay after each request, so a test reads the request's events on the bus
        as soon as the response is back (the lifespan, which starts the relay thread, is not entered)."""

        def request(self, *args, **kwargs):  # type: ignore[override]
            response = super().request(*args, **kwargs)
            self.app.state.relay.drain()
            return response

    apps: dict[str, TestClient] = {}

    def make(c: City) -> TestClient:
        if c.db.url not in apps:
            # The tests read messages in English; tests/api/test_language.py checks the Chinese default.
            apps[c.db.url] = RelayingClient(create_app(engine=c.engine, bus=InProcessBus()),
                                            headers={"Accept-Language": "en"})
        return apps[c.db.url]

    return make


@pytest.fixture
def client(city: City, client_for):
    return client_for(city)
