"""The twin deployed: two serving processes on one PostgreSQL database and one NATS JetStream deployment.
What one process writes the other serves; an @context deleted through one is dropped by the other (the
cache invalidation travels over the bus)."""

from __future__ import annotations

import time
import uuid

import pytest

from citybase.storage.migrate import upgrade
from tests.bus.conftest import NATS_URL
from tests.conftest import new_database, unavailable
from tests.servers import call, serve
from tests.twin.conftest import CTX

pytestmark = [pytest.mark.postgres, pytest.mark.nats]
WITHIN = 60.0


def test_two_processes_share_one_twin(tmp_path):
    import os

    from citybase.bus.nats import NatsBus

    if not os.environ.get("CITYBASE_TEST_NATS_URL"):
        unavailable("set CITYBASE_TEST_NATS_URL to run the twin on PostgreSQL + NATS")
    db = new_database("postgresql", tmp_path)
    upgrade(db.engine)
    bus_url = f"{NATS_URL}?deployment=tw{uuid.uuid4().hex[:10]}"
    try:
        bus = NatsBus(bus_url)
    except ConnectionError as exc:
        unavailable(f"NATS JetStream not available: {exc}")
    env = {"CITYBASE_BUS_URL": bus_url, "CITYBASE_TWIN_ANONYMOUS": "write"}
    try:
        with serve(db.url, tmp_path / "a", **env) as a, serve(db.url, tmp_path / "b", **env) as b:
            h = {"Content-Type": "application/json"}
            r = call("POST", f"{a.base}/ngsi-ld/v1/jsonldContexts", json_body={"@context": {"Lamp": "https://ex.org/Lamp"}},
                     headers=h)
            assert r.status == 201, r.body
            ctx_url = a.base + r.headers["location"]
            body = {"id": "urn:ngsi-ld:Lamp:1", "type": "Lamp", "lux": {"type": "Property", "value": 80},
                    "@context": [ctx_url, CTX]}
            assert call("POST", f"{a.base}/ngsi-ld/v1/entities", json_body=body,
                        headers={"Content-Type": "application/ld+json"}).status == 201
            link = {"Link": f'<{ctx_url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'}
            got = call("GET", f"{b.base}/ngsi-ld/v1/entities?type=Lamp", headers=link)
            assert got.status == 200 and [e["id"] for e in got.body] == ["urn:ngsi-ld:Lamp:1"]
            assert got.body[0]["type"] == "Lamp"  # process b resolved a's hosted context from the database
            cid = r.headers["location"].rsplit("/", 1)[-1]
            assert call("DELETE", f"{a.base}/ngsi-ld/v1/jsonldContexts/{cid}").status == 204
            deadline = time.monotonic() + WITHIN
            while True:  # b drops its copy when the invalidation arrives over NATS
                gone = call("GET", f"{b.base}/ngsi-ld/v1/entities?type=Lamp", headers=link)
                if gone.status in (400, 504) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert gone.status == 504 and gone.body["type"].endswith("LdContextNotAvailable"), gone.body
    finally:
        bus.delete_streams()
        bus.close()
        db.engine.dispose()
        if db.drop:
            db.drop()
