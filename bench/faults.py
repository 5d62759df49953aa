"""Faults under load: 8 concurrent intake clients (12345 hotline, `POST /api/v1/ops/hotline`, a new
`Idempotency-Key` per report, the same key on every retry after a 503 or a lost connection) against

* ``kill``: a `citybase serve` process killed with SIGKILL mid-load and started again;
* ``pg-restart``: the PostgreSQL server restarted mid-load (a private cluster made with initdb on a free
  port, never the shared one; ``pg_ctl restart -m immediate`` by default, i.e. a crash and recovery).

Both publish to NATS JetStream under their own ``?deployment=``; a durable consumer subscribed before the
load counts ``citybase.ops.incident.receive`` per incident after the outbox relay has drained. Printed:
every answered (2xx) report stored exactly once (its key, carried in its text, → one incident, the one
answered); every stored incident's receive event on the bus (once); every failure the clients saw by kind
(a 503 with Retry-After, a refused or dropped connection) and anything else (500, 4xx: must be none).

    python bench/faults.py [--scenarios kill,pg-restart] [--kill-engine sqlite|postgresql] [--seconds 60]
                           [--fault-at 20] [--clients 8] [--pg-mode immediate|fast]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import PG_ADMIN, Server, free_port, new_database  # noqa: E402

from citybase.bus import connect  # noqa: E402
from citybase.kernel import outbox  # noqa: E402
from citybase.ops.classification.corpus import generate_corpus  # noqa: E402
from citybase.storage.db import make_engine  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARK = re.compile(r"〔(k[0-9a-f]{32})〕")
RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ReadTimeout,
             httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Report:
    key: str
    attempts: int = 0
    answered: int | None = None  # the 2xx status, once answered
    incident_id: int | None = None
    replayed: bool = False
    failures: list[str] = field(default_factory=list)  # retryable ones, by kind
    bad: list[str] = field(default_factory=list)  # anything else the client saw


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb) on a free port, run as the postgres user, restartable."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cb-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._pg("initdb", "-D", f"{self.dir}/data", "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._pg("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w",
                 "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on", "start")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def restart(self, mode: str) -> None:
        """Stop (``mode``: fast or immediate) and start again; returns when it accepts connections."""
        self._pg("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-m", mode, "restart",
                 "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1")

    def destroy(self) -> None:
        try:
            self._pg("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def client(server: Server, token: str, addresses: list[str], texts: list[tuple[str, str]], stop: threading.Event,
           reports: list[Report], seed: int) -> None:
    """Send reports one after another until ``stop``; each is retried with its key until answered (give up at 180 s)."""
    rnd = random.Random(seed)
    with httpx.Client(base_url=server.base, timeout=30) as http:
        while not stop.is_set():
            r = Report(key="k" + uuid.uuid4().hex)
            reports.append(r)
            desc, _ = rnd.choice(texts)
            body = {"caller_phone": f"139{rnd.randrange(10**8):08d}", "text": f"{desc}〔{r.key}〕",
                    "address": rnd.choice(addresses)}
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": r.key}
            give_up = time.monotonic() + 180
            while time.monotonic() < give_up:
                r.attempts += 1
                try:
                    resp = http.post("/api/v1/ops/hotline", json=body, headers=headers)
                except RETRYABLE as exc:
                    r.failures.append(type(exc).__name__)
                    time.sleep(0.3)
                    continue
                if 200 <= resp.status_code < 300:
                    r.answered, r.incident_id = resp.status_code, resp.json()["incident"]["id"]
                    r.replayed = resp.headers.get("Idempotent-Replayed") == "true"
                    break
                if resp.status_code == 503 and resp.headers.get("Retry-After"):
                    r.failures.append("503 Retry-After")
                    time.sleep(min(float(resp.headers["Retry-After"]), 1.0))  # honoured, capped at 1 s for the bench
                    continue
                r.bad.append(f"{resp.status_code} {resp.headers.get('Retry-After')!r} {resp.text[:300]}")
                break


def drain_bus(sub, quiet: float = 3.0) -> tuple[Counter, Counter]:
    """Fetch and ack everything until nothing arrives for ``quiet`` seconds: receive events per incident id."""
    per_incident: Counter = Counter()
    subjects: Counter = Counter()
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        got = sub.fetch(batch=200, timeout=1.0)
        for d in got:
            subjects[d.event.subject] += 1
            if d.event.subject == "citybase.ops.incident.receive":
                per_incident[d.event.data["incident_id"]] += 1
            d.ack()
        if got:
            last = time.monotonic()
    return per_incident, subjects


def scenario(name: str, args: argparse.Namespace) -> dict:
    data = Path(tempfile.mkdtemp(prefix=f"cb-faults-{name}-"))
    pg = drop = None
    if name == "pg-restart":
        pg = PrivatePostgres()
        with create_engine(pg.url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text("CREATE DATABASE citybase"))
        db_url = pg.url.rsplit("/", 1)[0] + "/citybase"
    elif args.kill_engine == "postgresql":
        db_url, drop = new_database(args.postgres, "bench_faults")
    else:
        db_url = f"sqlite:///{data / 'citybase.sqlite3'}"
    deployment = f"benchflt{uuid.uuid4().hex[:6]}"
    bus_url = f"{args.nats}?deployment={deployment}"
    server = Server(data, db_url, bus_url)
    bus = None
    try:
        print(f"[{name}] setting up the small city ({db_url.split(':')[0]}, bus {bus_url}) in {data} …", flush=True)
        tokens = server.setup()
        bus = connect(bus_url)
        sub = bus.subscribe("citybase.ops.incident.>", durable="bench-faults")
        engine = make_engine(db_url)
        with engine.connect() as c:
            before = c.execute(text("SELECT count(*) FROM ops_incidents")).scalar()
            addresses = [a.replace("上海市徐汇区", "") for (a,) in c.execute(text("SELECT address FROM buildings ORDER BY id LIMIT 5000"))]
        engine.dispose()
        server.start()
        texts = generate_corpus(10, seed=11, styles="heldout")
        stop = threading.Event()
        per_client: list[list[Report]] = [[] for _ in range(args.clients)]
        threads = [threading.Thread(target=client, args=(server, tokens["dispatcher"], addresses, texts, stop,
                                                         per_client[k], k)) for k in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.fault_at)
        sent_before = sum(len(x) for x in per_client)
        f0 = time.monotonic()
        if name == "kill":
            print(f"[{name}] t={f0 - t0:.0f} s: SIGKILL to pid {server.proc.pid} after {sent_before} reports begun", flush=True)
            server.kill()
            server.start()
        else:
            print(f"[{name}] t={f0 - t0:.0f} s: pg_ctl restart -m {args.pg_mode} after {sent_before} reports begun", flush=True)
            pg.restart(args.pg_mode)
        outage = time.monotonic() - f0
        print(f"[{name}] back after {outage:.1f} s", flush=True)
        time.sleep(max(args.seconds - (time.monotonic() - t0), 0))
        stop.set()
        for t in threads:
            t.join()
        reports = [r for x in per_client for r in x]
        # the relay drains the outbox, then the consumer reads everything
        engine = make_engine(db_url)
        deadline = time.monotonic() + 120
        while outbox.depth(engine) and time.monotonic() < deadline:
            time.sleep(0.5)
        depth = outbox.depth(engine)
        per_incident, subjects = drain_bus(sub)
        with engine.connect() as c:
            rows = c.execute(text("SELECT id, description FROM ops_incidents")).all()
            idem = c.execute(text("SELECT count(*) FROM kernel_idempotency")).scalar()
        engine.dispose()
    finally:
        server.stop()
        if bus is not None:
            bus.delete_streams()
            bus.close()
        if drop:
            drop()
        if pg:
            pg.destroy()

    stored: dict[str, list[int]] = {}
    for iid, desc in rows:
        m = MARK.search(desc or "")
        if m:
            stored.setdefault(m.group(1), []).append(iid)
    answered = [r for r in reports if r.answered]
    once = [r for r in answered if stored.get(r.key) == [r.incident_id]]
    dup = [r for r in answered if len(stored.get(r.key, [])) > 1]
    lost = [r for r in answered if not stored.get(r.key)]
    unanswered = [r for r in reports if not r.answered]
    stored_unanswered = [r for r in unanswered if stored.get(r.key)]
    marked_ids = {i for ids in stored.values() for i in ids}
    on_bus_once = sum(1 for i in marked_ids if per_incident.get(i) == 1)
    on_bus_many = sum(1 for i in marked_ids if per_incident.get(i, 0) > 1)
    missing_on_bus = sorted(i for i in marked_ids if not per_incident.get(i))
    failures = Counter(f for r in reports for f in r.failures)
    bad = [b for r in reports for b in r.bad]
    return {
        "scenario": name, "database": db_url.split(":")[0], "clients": args.clients, "seconds": args.seconds,
        "outage_s": round(outage, 1), "reports": len(reports), "answered": len(answered),
        "answered_after_retry": sum(1 for r in answered if r.failures), "replayed": sum(r.replayed for r in answered),
        "stored_once": len(once), "duplicated": len(dup), "lost": len(lost), "unanswered": len(unanswered),
        "unanswered_but_stored": len(stored_unanswered), "incidents_before": before, "incidents_stored": len(rows),
        "idempotency_keys": idem, "outbox_depth_after": depth, "receive_on_bus_once": on_bus_once,
        "receive_on_bus_more": on_bus_many, "missing_on_bus": missing_on_bus[:20], "missing_on_bus_n": len(missing_on_bus),
        "bus_subjects": dict(subjects), "retryable_failures": dict(failures), "bad_failures": len(bad),
        "bad_examples": bad[:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="kill,pg-restart")
    ap.add_argument("--kill-engine", default="sqlite", choices=("sqlite", "postgresql"))
    ap.add_argument("--seconds", type=float, default=60, help="load duration")
    ap.add_argument("--fault-at", type=float, default=20, help="seconds into the load")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--pg-mode", default="immediate", choices=("immediate", "fast"))
    ap.add_argument("--postgres", default=PG_ADMIN, help="server for --kill-engine postgresql")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    results = []
    for name in args.scenarios.split(","):
        results.append(scenario(name, args))
        r = results[-1]
        ok = (r["stored_once"] == r["answered"] and not r["duplicated"] and not r["lost"] and not r["bad_failures"]
              and not r["missing_on_bus_n"] and not r["receive_on_bus_more"] and not r["unanswered"])
        print(f"\n[{name}] {r['database']}, {r['clients']} clients, {r['seconds']:g} s, outage {r['outage_s']} s")
        print(f"  reports {r['reports']}, answered {r['answered']} ({r['answered_after_retry']} after a retry, "
              f"{r['replayed']} replayed), unanswered {r['unanswered']} (of which stored {r['unanswered_but_stored']})")
        print(f"  stored exactly once as answered {r['stored_once']}/{r['answered']}; duplicated {r['duplicated']}; "
              f"lost {r['lost']}; incidents {r['incidents_before']} → {r['incidents_stored']}, keys {r['idempotency_keys']}")
        print(f"  bus: receive once for {r['receive_on_bus_once']}, more than once {r['receive_on_bus_more']}, missing "
              f"{r['missing_on_bus_n']} {r['missing_on_bus']}; outbox left {r['outbox_depth_after']}; {r['bus_subjects']}")
        print(f"  failures seen: retryable {r['retryable_failures']}; other {r['bad_failures']} {r['bad_examples']}")
        print(f"  {'OK' if ok else 'NOT OK'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
