"""Several processes, one city: two `citybase serve` processes (one of them with `--workers 2`) and one
`citybase worker` on PostgreSQL + NATS run the incident loop together.

Real processes, a real database, a real JetStream (a deployment of its own), a real HTTP receiver for the
webhook. Every wait is bounded; nothing asserts how long anything took."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.geo.models import Building
from citybase.kernel import webhooks
from citybase.kernel.models import OutboxEvent
from citybase.ops.workflow.models import Incident, Supervision
from citybase.registry.models import Department
from tests.bus.conftest import NATS_URL
from tests.conftest import new_database, unavailable
from tests.servers import SRC, call, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.nats]
WITHIN = 120.0  # seconds any one awaited thing may take before the test gives up (two shared cores)


def _env(db_url: str, bus_url: str, data_dir: Path, metrics_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "CITYBASE_DATABASE_URL": db_url, "CITYBASE_BUS_URL": bus_url, "CITYBASE_DATA_DIR": str(data_dir),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **extra}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "citybase.cli", *args], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _until(what: str, ready: Callable[[], object], within: float = WITHIN) -> object:
    deadline = time.monotonic() + within
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.3)


@contextmanager
def _process(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen]:
    out = open(log, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "citybase.cli", *args], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()


def _serving(proc: subprocess.Popen, base: str, log: Path) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the server stopped: {log.read_text()[-3000:]}")
        return call("GET", f"{base}/api/v1/health", timeout=2).status == 200

    _until(f"{base} to answer", up)


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[str, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((self.headers["X-Citybase-Signature"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _timer_runs(base: str, timer: str) -> float:
    text = call("GET", f"{base}/metrics").body
    total = 0.0
    for line in str(text).splitlines():
        if line.startswith("citybase_timer_runs_total{") and f'timer="{timer}"' in line and 'outcome="ok"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_serving_processes_and_a_worker_run_the_incident_loop_together(tmp_path):
    from citybase.bus.nats import NatsBus

    if not os.environ.get("CITYBASE_TEST_POSTGRES_URL") or not os.environ.get("CITYBASE_TEST_NATS_URL"):
        unavailable("set CITYBASE_TEST_POSTGRES_URL and CITYBASE_TEST_NATS_URL to run the processes on PostgreSQL + NATS")
    db = new_database("postgresql", tmp_path)
    bus_url = f"{NATS_URL}?deployment=p{uuid.uuid4().hex[:12]}"
    try:
        bus = NatsBus(bus_url)
    except ConnectionError as exc:
        unavailable(f"NATS JetStream not available: {exc}")
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    data_dir, metrics_dir = tmp_path / "data", tmp_path / "metrics"
    metrics_dir.mkdir()
    env = _env(db.url, bus_url, data_dir, metrics_dir)
    try:
        # the city and the first token, with the commands an operator would use
        _cli(env, "generate", "--size", "small")
        out = _cli(env, "users", "create", "root", "--roles", "admin").stdout.replace("\n", "")
        admin_token = json.loads(out[out.index("{"):])["token"]
        # every ops event, read by this test from the start of the deployment's stream
        seen = bus.subscribe("citybase.ops.>", durable="test-watch")

        port_a, port_b = free_port(), free_port()
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        serve_env = {**env, "CITYBASE_WORKERS": "0", "CITYBASE_OPS_SUPERVISION_INTERVAL": "1"}
        with _process({**env, "CITYBASE_OPS_SUPERVISION_INTERVAL": "1"}, tmp_path / "worker.log", "worker") as w, \
                _process(serve_env, tmp_path / "a.log", "serve", "--port", str(port_a)) as pa, \
                _process(serve_env, tmp_path / "b.log", "serve", "--port", str(port_b), "--workers", "2") as pb:
            _serving(pa, a, tmp_path / "a.log")
            _serving(pb, b, tmp_path / "b.log")
            _until("the worker to start", lambda: "citybase worker:" in (tmp_path / "worker.log").read_text()
                   or (w.poll() is not None and pytest.fail((tmp_path / "worker.log").read_text())))
            root = {"Authorization": f"Bearer {admin_token}"}

            def token(roles: list[str], department_id: int | None = None) -> dict[str, str]:
                u = call("POST", f"{a}/api/v1/users", headers=root, json_body={
                    "username": f"u-{uuid.uuid4().hex[:8]}", "display_name": "测试", "roles": roles,
                    "department_id": department_id})
                assert u.status == 201, u.body
                t = call("POST", f"{b}/api/v1/users/{u.body['id']}/tokens", headers=root, json_body={})
                assert t.status == 201, t.body
                return {"Authorization": f"Bearer {t.body['token']}"}

            with Session(db.engine) as s:
                houses = s.scalars(select(Building).where(Building.use == "residential").order_by(Building.id)
                                   .limit(5)).all()
                dept = s.scalars(select(Department).where(Department.short_name == "房管局")).one()
                other = s.scalars(select(Department).where(Department.short_name == "建管委")).one()
            dispatcher, inspector = token(["dispatcher"]), token(["grid_inspector"])
            handler = token(["handler"], dept.id)

            # a webhook registered on A receives the loop's events, signed (delivered by the worker)
            hook = call("POST", f"{a}/api/v1/ops/webhooks", headers=root, json_body={
                "url": f"http://127.0.0.1:{receiver.server_port}/hook", "events": "citybase.ops.>", "secret": "s3"})
            assert hook.status == 201, hook.body

            # the incident loop, alternating the two serving processes
            r = call("POST", f"{a}/api/v1/ops/hotline", headers=dispatcher, json_body={
                "caller_phone": "13911110009", "text": "门口有一摊东西堆着好几天了", "address": houses[0].address})
            assert r.status == 201, r.body
            inc = r.body["incident"]["id"]

            def act(base: str, who: dict[str, str], action: str, **body: object) -> dict:
                answer = call("POST", f"{base}/api/v1/ops/incidents/{inc}/{action}", headers=who, json_body=body)
                assert answer.status == 200, (action, answer.body)
                return answer.body

            assert act(b, dispatcher, "register", category_code="08002", priority="normal")["status"] == "registered"
            assert act(b, dispatcher, "dispatch", main_department_id=dept.id,
                       assist_department_ids=[])["status"] == "dispatched"
            assert act(a, handler, "accept")["status"] == "handling"
            assert act(b, handler, "complete", result="已清理")["status"] == "verifying"
            closed = act(a, inspector, "verify", passed=True, note="现场已清理")
            assert closed["status"] == "closed"

            # a routing rule added through A is used by B's next intake
            rule = call("POST", f"{a}/api/v1/ops/rules", headers=root, json_body={
                "category_code": "02002", "main_department": other.code, "precedence": 1, "note": "test"})
            assert rule.status == 201, rule.body
            r = call("POST", f"{b}/api/v1/ops/incidents", headers=dispatcher, json_body={
                "description": "路灯不亮了", "category_code": "02002", "building_id": houses[1].id})
            assert r.status == 201, r.body
            assert r.body["incident"]["main_department_id"] == other.id

            # an IoT alarm on the bus becomes an incident through the worker's consumer
            device = f"dev-{uuid.uuid4().hex[:8]}"
            bus.publish("citybase.iot.alarm.raised", {"alarm_type": "manhole_cover_open", "device_id": device,
                                                       "lon": houses[2].lon, "lat": houses[2].lat})

            def alarm_incident() -> int | None:
                with Session(db.engine) as s:
                    return s.scalar(select(Incident.id).where(Incident.description.contains(device)))

            alarm = _until("the alarm's incident", alarm_incident)

            # 督办 once by the worker's timer for an overdue incident, however often the timer runs
            r = call("POST", f"{b}/api/v1/ops/incidents", headers=dispatcher, json_body={
                "description": "井盖缺失，很危险", "category_code": "02006", "building_id": houses[3].id})
            late = r.body["incident"]["id"]
            with Session(db.engine) as s:
                s.execute(update(Incident).where(Incident.id == late).values(deadline_at=utcnow() - timedelta(hours=1)))
                s.commit()

            def supervisions() -> int:
                with Session(db.engine) as s:
                    return int(s.scalar(select(func.count()).select_from(Supervision)
                                        .where(Supervision.incident_id == late)) or 0)

            _until("the 督办", supervisions)
            runs = _timer_runs(a, "ops-supervision")  # the worker's runs, read from A's /metrics (one folder)
            _until("three more supervision sweeps", lambda: _timer_runs(a, "ops-supervision") >= runs + 3)
            assert supervisions() == 1

            # every event about these incidents is on the bus exactly once
            wanted = {inc, alarm, late}
            with Session(db.engine) as s:
                expected = {r.event_id for r in s.scalars(select(OutboxEvent))
                            if json.loads(r.data).get("incident_id") in wanted}
            got: Counter[str] = Counter()

            def drain() -> bool:
                for d in seen.fetch(batch=100, timeout=1.0):
                    got[d.event.id] += 1
                    d.ack()
                return expected <= set(got)

            _until("every event of the loop on the bus", drain)
            drain()  # one more quiet fetch: a duplicate arriving late is counted too
            assert {e: n for e, n in got.items() if e in expected and n != 1} == {}

            # the webhook got the first incident's events, each signed with the secret
            def hooked() -> set[str]:
                ids = set()
                for signature, body in list(_Receiver.got):
                    assert webhooks.verify("s3", body, signature)
                    event = json.loads(body)
                    if event["data"].get("incident_id") == inc:
                        ids.add(event["id"])
                return ids

            with Session(db.engine) as s:
                first = {r.event_id for r in s.scalars(select(OutboxEvent))
                         if json.loads(r.data).get("incident_id") == inc}
            assert len(first) >= 6  # received, registered, dispatched, accepted, completed, verified, closed…
            _until("the webhook deliveries", lambda: first <= hooked())
        assert w.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]  # stopped cleanly on SIGTERM
    finally:
        receiver.shutdown()
        try:
            bus.delete_streams()
        finally:
            bus.close()
            db.engine.dispose()
            if db.drop:
                db.drop()  # type: ignore[operator]
