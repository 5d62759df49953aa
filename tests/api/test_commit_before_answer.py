"""The request's transaction is committed before the answer is sent: a commit that fails is the client's
answer (never a 2xx for work that was not stored), and a 2xx means the work is visible to everyone."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.security.models import User


@pytest.fixture
def failing_commits(city):
    """The app, whose database refuses the commit of any transaction that stores a user named failcommit-…"""
    app = create_app(engine=city.engine, bus=InProcessBus())

    def note(session: Session, _ctx) -> None:
        if any(isinstance(o, User) and o.username.startswith("failcommit-") for o in session.new):
            session.info["fail_commit"] = True

    def refuse(session: Session) -> None:
        if session.info.pop("fail_commit", False):
            raise ConnectionError("the database went away during the commit")

    event.listen(app.state.sessions, "before_flush", lambda session, ctx, _i: note(session, ctx))
    event.listen(app.state.sessions, "before_commit", refuse)
    return TestClient(app, headers={"Accept-Language": "en"}, raise_server_exceptions=False)


def test_a_commit_that_fails_is_the_answer(failing_commits, city):
    name = f"failcommit-{uuid.uuid4().hex[:8]}"
    r = failing_commits.post("/api/v1/users", headers=city.auth("admin"),
                             json={"username": name, "display_name": name, "roles": ["analyst"]})
    assert r.status_code == 503, r.text  # not 201: nothing was stored, and the client is told to retry
    assert r.headers["content-type"].startswith("application/problem+json") and "Retry-After" in r.headers
    with Session(city.engine) as s:
        assert s.scalar(select(User.id).where(User.username == name)) is None


def test_a_201_means_the_work_is_already_visible(client, city):
    name = f"seen-{uuid.uuid4().hex[:8]}"
    r = client.post("/api/v1/users", headers=city.auth("admin"),
                    json={"username": name, "display_name": name, "roles": ["analyst"]})
    assert r.status_code == 201, r.text
    with Session(city.engine) as s:  # another connection, right after the answer
        assert s.scalar(select(User.id).where(User.username == name)) is not None
