"""NGSI-LD notification latency: an attribute update sent to a real `citybase serve` until its notification
reaches a local HTTP receiver, with 10,000 subscriptions in the tenant. Prints mean, p50, p99 and max.

The tenant's subscriptions are made through the API: ``--per-id`` on one Sensor id each (of Sensors that never
change, but one, the measured entity), ``--by-type`` on every Sensor with a q that never holds (candidates of
every change, evaluated and refused), the rest on watchedAttributes that no update touches; one subscription
on the measured Sensor posts to the receiver. Updates go one at a time (the next after the previous
notification arrived), so the figure is the path's latency, not its throughput.

    python bench/twin_notify.py [--subscriptions 10000] [--by-type 990] [--updates 300] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CITYBASE, PG_ADMIN, Server, new_database  # noqa: E402

TENANT = "bench"
H = {"NGSILD-Tenant": TENANT, "Content-Type": "application/json"}
MEASURED = "urn:ngsi-ld:Sensor:S0"


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        at = time.perf_counter()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        srv: Any = self.server
        for e in body["data"]:
            srv.arrived[e["temperature"]] = at
            srv.event.set()

    def log_message(self, *args: Any) -> None:
        pass


def _subscription(n: int, per_id: int, by_type: int, sink: str) -> dict[str, Any]:
    nowhere = {"endpoint": {"uri": "http://127.0.0.1:9/never"}}
    if n == 0:
        return {"type": "Subscription", "entities": [{"type": "Sensor", "id": MEASURED}],
                "notification": {"format": "keyValues", "attributes": ["temperature"], "endpoint": {"uri": sink}}}
    if n < per_id:
        return {"type": "Subscription", "entities": [{"type": "Sensor", "id": f"urn:ngsi-ld:Sensor:S{n}"}],
                "notification": nowhere}
    if n < per_id + by_type:
        return {"type": "Subscription", "entities": [{"type": "Sensor"}], "q": f"temperature>{1_000_000 + n}",
                "notification": nowhere}
    return {"type": "Subscription", "watchedAttributes": [f"humidity{n}"], "notification": nowhere}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscriptions", type=int, default=10_000)
    ap.add_argument("--by-type", type=int, default=990)
    ap.add_argument("--watched", type=int, default=10)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL (and the in-process bus) instead of SQLite")
    args = ap.parse_args()
    per_id = args.subscriptions - args.by_type - args.watched
    data = Path(tempfile.mkdtemp(prefix="bench-twin-notify-"))
    drop = None
    if args.postgres:
        db_url, drop = new_database(PG_ADMIN, "bench_twin_notify")
    else:
        db_url = f"sqlite:///{data / 'city.sqlite3'}"
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.arrived, receiver.event = {}, threading.Event()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{receiver.server_port}/notify"

    server = Server(data, db_url, "memory://", CITYBASE_TWIN_ANONYMOUS="write", CITYBASE_LOG_LEVEL="WARNING")
    subprocess.run([CITYBASE, "db", "upgrade"], env=server.env, check=True, capture_output=True)
    server.start()
    try:
        with httpx.Client(base_url=server.base + "/ngsi-ld/v1", headers=H, timeout=30) as c:
            assert c.post("/entities", json={"id": MEASURED, "type": "Sensor", "temperature": -1}).status_code == 201
            started = time.perf_counter()

            def make(n: int) -> None:
                r = c.post("/subscriptions", json=_subscription(n, per_id, args.by_type, sink))
                assert r.status_code == 201, r.text

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(make, range(args.subscriptions)))
            made = time.perf_counter() - started
            count = c.get("/subscriptions", params={"count": "true", "limit": 1}).headers["NGSILD-Results-Count"]
            print(f"{'PostgreSQL' if args.postgres else 'SQLite'}, memory://: {count} subscriptions in the tenant "
                  f"({per_id} by id, {args.by_type} by type with a q, {args.watched} on watchedAttributes), "
                  f"made in {made:.1f} s ({args.subscriptions / made:.0f}/s)")

            def update(value: int) -> float:
                receiver.event.clear()
                t0 = time.perf_counter()
                r = c.patch(f"/entities/{MEASURED}/attrs", json={"temperature": value})
                assert r.status_code == 204, r.text
                deadline = time.monotonic() + 30
                while value not in receiver.arrived:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"no notification for update {value} within 30 s")
                    receiver.event.wait(0.5)
                    receiver.event.clear()
                return receiver.arrived[value] - t0

            first = update(0)  # the tenant's index is built on this one
            for v in range(1, 6):
                update(v)  # warm-up
            lat = sorted(update(v) for v in range(10, 10 + args.updates))
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"first update (index of {count} built): {first * 1000:.0f} ms")
        print(f"{args.updates} updates, update sent → notification received: mean {statistics.mean(lat) * 1000:.1f} ms, "
              f"p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    finally:
        server.stop()
        receiver.shutdown()
        if drop:
            drop()


if __name__ == "__main__":
    main()
