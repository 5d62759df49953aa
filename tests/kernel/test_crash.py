"""A process killed between its commit and the publication loses no event: a restarted relay sends each once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from citybase.bus import connect
from citybase.kernel.outbox import Relay

from .conftest import collect, fresh_building, outbox_ids

SRC = Path(__file__).resolve().parents[2] / "src"

# Commits one intake (receive, register, dispatch) and dies by SIGKILL: at once ("before-publish"), or after
# its relay published the first event but before it marked it ("mid-batch").
CHILD = r"""
import os, signal, sys
import citybase.security.models, citybase.registry.models  # every table the foreign keys name
from citybase.bus import Context, connect
from citybase.kernel import outbox
from citybase.kernel.outbox import Relay
from citybase.ops.intake import service
from citybase.storage.db import make_engine, make_sessionmaker

db_url, building_id, text, mode, bus_url = sys.argv[1:6]
engine = make_engine(db_url)
with make_sessionmaker(engine)() as s:
    outbox.bind_context(s, Context(user_id="crash-test"))
    r = service.intake(session=s, channel="api", actor=service.Actor("crash-test"), description=text,
                       category_code="01007", building_id=int(building_id))
    s.commit()
    print(r.incident.id, flush=True)

if mode == "mid-batch":
    bus = connect(bus_url)

    class DiesAfterFirstPublish:
        def publish_events(self, events):
            bus.publish_events(events[:1])  # acknowledged by JetStream: stored
            os.kill(os.getpid(), signal.SIGKILL)  # ... and its row is never marked

    Relay(engine, DiesAfterFirstPublish()).run_once()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.nats
@pytest.mark.parametrize("mode", ["before-publish", "mid-batch"])
def test_a_process_killed_after_its_commit_loses_no_event_and_duplicates_none(city, nats_deployment, mode):
    b = fresh_building(city)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.run([sys.executable, "-c", CHILD, city.db.url, str(b.id), f"崩溃测试 {uuid.uuid4().hex[:6]}",
                            mode, nats_deployment], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    incident_id = int(child.stdout.split()[0])
    rows = outbox_ids(city, incident_id)
    assert len(rows) == 3 and not any(published for _, published in rows)  # committed, never marked

    bus = connect(nats_deployment)
    try:
        sub = bus.subscribe("citybase.ops.>", "crash-watch")  # a consumer of the deployment, from the start
        Relay(city.engine, bus).drain()  # the restarted process's relay
        got = collect(sub, lambda e: e.data.get("incident_id") == incident_id, 3)
    finally:
        bus.close()
    assert Counter(e.id for e in got) == Counter({event_id: 1 for event_id, _ in rows})
    assert [e.subject.rsplit(".", 1)[1] for e in got] == ["receive", "register", "dispatch"]
    assert all(published for _, published in outbox_ids(city, incident_id))
