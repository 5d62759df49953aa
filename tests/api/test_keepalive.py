"""After an internal error the client's keep-alive connection stays usable (a real uvicorn server)."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
import uvicorn
from fastapi import Depends
from sqlalchemy import text
from sqlalchemy.orm import Session

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.security.deps import allow, get_session
from citybase.security.roles import PUBLIC


@pytest.fixture
def server(city):
    """A real uvicorn server of the app, with one test-only route that fails inside the database."""
    app = create_app(engine=city.engine, bus=InProcessBus())

    @app.get("/api/v1/test-only/broken-query")
    def broken(_: object = Depends(allow(PUBLIC)), session: Session = Depends(get_session)) -> dict:
        return {"rows": session.execute(text("SELECT * FROM no_such_table")).all()}  # a genuine bug

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started and thread.is_alive():
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(30)
    sock.close()


def _local_port(r: httpx.Response) -> int | None:
    """The client's port of the connection that carried ``r``; None once the server has closed it."""
    try:
        return r.extensions["network_stream"].get_extra_info("client_addr")[1]
    except OSError:
        return None


def test_an_internal_error_answers_problem_json_and_keeps_the_connection(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        first = c.get("/api/v1/health")
        ports = [_local_port(first)]
        broken = c.get("/api/v1/test-only/broken-query")
        ports.append(_local_port(broken))
        after = c.get("/api/v1/health")
        ports.append(_local_port(after))
    assert first.status_code == 200 and after.status_code == 200
    assert broken.status_code == 500
    assert broken.headers["content-type"] == "application/problem+json"
    assert broken.json()["instance"] == "/api/v1/test-only/broken-query"
    assert broken.headers.get("connection") != "close"
    assert ports[0] == ports[1] == ports[2]  # one connection, reused after the 500
