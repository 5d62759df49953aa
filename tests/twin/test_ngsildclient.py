"""A real NGSI-LD client from PyPI (ngsildclient 0.5.2, in .venv-ngsild: its pins clash with the test tools')
works against citybase unchanged: a real `citybase` server process on each engine, the client in its own
Python, speaking HTTP with a data officer's token, receiving notifications on a server of its own."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from citybase.demo.accounts import create_demo_users
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES, unavailable
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-ngsild" / "bin" / "python"
SCRIPT = Path(__file__).with_name("clients") / "ngsildclient_run.py"


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_ngsildclient_creates_queries_subscribes_and_reads_history(empty_db, tmp_path):
    if not PYTHON.exists():
        unavailable(f"{PYTHON} is missing: `./run test` creates it from requirements-ngsild.lock")
    upgrade(empty_db.engine)
    tokens = create_demo_users(empty_db.engine, tmp_path)
    # a database of its own: this server runs the consumers and timers (subscriptions are matched and notified)
    with serve(empty_db.url, tmp_path, CITYBASE_WORKERS="1") as server:
        tenant = f"ngc{uuid.uuid4().hex[:8]}"
        r = subprocess.run([str(PYTHON), str(SCRIPT), server.base, tokens["dataofficer"], tenant],
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["retrieved_pm25"] == 50
    assert seen["q"] == ["urn:ngsi-ld:AirQualityObserved:XH-2", "urn:ngsi-ld:AirQualityObserved:XH-4"]
    # within 150 m of (121.43, 31.19): XH-0 there, XH-1 about 111 m north; XH-2 is 222 m away
    assert seen["geoq_near"] == ["urn:ngsi-ld:AirQualityObserved:XH-0", "urn:ngsi-ld:AirQualityObserved:XH-1"]
    assert seen["count"] == 5 and seen["count_after_delete"] == 4
    values = seen["history"][0]["pm25"]["values"] if isinstance(seen["history"], list) else seen["history"]["pm25"]["values"]
    assert [v for v, _ in values] == [40, 61.0, 62.0, 66.0]
    assert seen["aggregated"]["max"][0][0] == 66.0 and round(seen["aggregated"]["avg"][0][0], 2) == 57.25
    assert seen["subscription"] == "urn:ngsi-ld:Subscription:ngc-1"
    assert seen["notified"] == [["urn:ngsi-ld:AirQualityObserved:XH-3", 88.0]]  # only the change that matched q
