"""Intake throughput through Open311 `POST requests` (classify, match the address, route, check
duplicates, store, publish) with 100,000 open incidents in the database and 50 concurrent
clients: SQLite with one serving process, PostgreSQL with one and with two; in the same run the
same servers' trivial endpoint (`GET /api/v1/health`) gives the ceiling.

usage: python bench/intake.py [--engines sqlite,postgresql,postgresql-2] [--open 100000] [--seconds 20]
                              [--clients 50] [--keep]

Each server is `citybase serve --port P` in its own process (one uvicorn worker); `postgresql-2`
starts two on two ports over the same database, and the load is spread over them round-robin:
each wrk thread is bound to one of the ports (wrk's `setup(thread)`), so half the connections go to
each. The load comes from another process on loopback: `wrk` (Debian package) when installed — a
Python client would be the bottleneck itself — else an httpx asyncio client (one process only).
``--keep`` reuses the databases a previous run prepared (the few thousand requests it stored stay)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.demo.accounts import create_demo_users
from citybase.demo.generator import generate
from citybase.geo.models import Building
from citybase.ops.catalogue.defaults import CATEGORIES
from citybase.ops.classification.corpus import generate_corpus
from citybase.ops.classification.training import train_classifier
from citybase.storage.db import bulk_insert, make_engine
from citybase.storage.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
OPEN_STATUSES = ("received", "registered", "dispatched", "handling", "verifying")


def prepare(kind: str, n_open: int, size: str = "district", keep: bool = False) -> tuple[str, Path, dict[str, str]]:
    """A district city with ``n_open`` open incidents, a trained classifier and demo tokens (with ``keep``,
    the ones a previous run left, when there are)."""
    data = OUT / f"intake-{kind}"
    url = (f"sqlite:///{data / 'citybase.sqlite3'}" if kind == "sqlite"
           else PG_ADMIN.rsplit("/", 1)[0] + "/citybase_intake")
    if keep and (data / "demo-tokens.json").exists() and (data / "classifier.joblib").exists():
        return url, data, json.loads((data / "demo-tokens.json").read_text())
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    if kind == "sqlite":
        url = f"sqlite:///{data / 'citybase.sqlite3'}"
    else:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("DROP DATABASE IF EXISTS citybase_intake WITH (FORCE)"))
            c.execute(text("CREATE DATABASE citybase_intake"))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/citybase_intake"
    engine = make_engine(url)
    upgrade(engine)
    print(f"[{kind}] generating the {size} city …", flush=True)
    generate(engine, size=size, seed=2026)
    with Session(engine) as s:
        buildings = s.execute(select(Building.id, Building.lon, Building.lat, Building.grid_id, Building.community_id,
                                     Building.street_id)).all()
        train_classifier(session=s, data_dir=data, corpus_per_category=150)
    texts = generate_corpus(20, seed=5, styles="heldout")
    rnd = random.Random(1)
    now = utcnow()
    print(f"[{kind}] loading {n_open:,} open incidents …", flush=True)

    def rows():
        for i in range(1, n_open + 1):
            b = rnd.choice(buildings)
            desc, code = rnd.choice(texts)
            created = now - timedelta(minutes=rnd.randrange(0, 72 * 60))
            yield (i, f"B{i:015d}", "hotline", rnd.choice(OPEN_STATUSES), code, True, code, 0.9, "normal", desc, None,
                   b[1], b[2], b[0], b[3], b[4], b[5], "{}", created + timedelta(days=5), created + timedelta(days=4),
                   0, 0, 0, created, created)

    bulk_insert(engine, "ops_incidents", ["id", "code", "channel", "status", "category_code", "category_confirmed",
                                          "suggested_code", "suggested_confidence", "priority", "description",
                                          "address_text", "lon", "lat", "building_id", "grid_id", "community_id",
                                          "street_id", "routing", "deadline_at", "warn_at", "repeat_count",
                                          "return_count", "reopen_count", "created_at", "updated_at"], rows())
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("SELECT setval(pg_get_serial_sequence('ops_incidents', 'id'), (SELECT MAX(id) FROM ops_incidents))"))
        c.execute(text("ANALYZE"))
    tokens = create_demo_users(engine, data)
    engine.dispose()
    return url, data, tokens


async def load(url: str, make_request, seconds: float, clients: int) -> tuple[float, list[float], int, int]:
    latencies: list[float] = []
    errors = 0
    codes: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def worker(k: int) -> None:
            nonlocal errors
            rnd = random.Random(k)
            while time.perf_counter() < stop:
                method, path, kw = make_request(rnd)
                t = time.perf_counter()
                try:
                    r = await client.request(method, path, **kw)
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    if r.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - start
    return len(latencies) / wall, latencies, errors, sum(codes.values())


WRK_LUA = """
local ports = {%(ports)s}
local threads = 0
setup = function(thread)
  -- round-robin over the serving processes: thread k talks to ports[k mod n]; each thread its own bodies
  thread.addr = wrk.lookup("127.0.0.1", ports[threads %% #ports + 1])[1]
  thread:set("offset", threads)
  threads = threads + 1
end
local bodies, step, next_body = {}, 1, 1
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  step = tonumber(args[2]) or 1
  next_body = (offset or 0) + 1
end
request = function()
  if #bodies == 0 then return wrk.format("GET", wrk.path) end
  -- every request a different report: a repeat within 10 minutes would be answered as a resubmission
  local body = bodies[(next_body - 1) %% #bodies + 1]
  next_body = next_body + step
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
    + summary.errors.timeout
  io.write(string.format("RESULT %%d %%f %%f %%f %%d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
"""


def wrk_load(url: str, path: str, bodies: list[str] | None, seconds: float, clients: int,
             ports: list[int], warm_up: bool = False) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) measured by wrk, its threads spread over ``ports`` (a warm-up may
    measure nothing: the first requests build the address index and load the classifier)."""
    import tempfile
    import urllib.parse

    with tempfile.TemporaryDirectory() as tmp:
        lua, data = Path(tmp, "load.lua"), Path(tmp, "bodies.txt")
        lua.write_text(WRK_LUA % {"ports": ", ".join(f'"{p}"' for p in ports)})
        data.write_text("\n".join(urllib.parse.urlencode(b) for b in bodies) if bodies else "")
        out = subprocess.run(["wrk", f"-t{2 * len(ports)}", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(lua),
                              url + path, "--", str(data), str(2 * len(ports))], capture_output=True, text=True, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT")), None)
    if line is None or (" 0 " in line[:12] and not warm_up):
        raise SystemExit(f"wrk measured nothing:\n{out}")
    n, dur, p50, p99, errors = line.split()[1:]
    if warm_up:
        return 0.0, 0.0, 0.0, 0
    return int(n) / float(dur), float(p50), float(p99), int(errors)


def pct(xs: list[float], p: float) -> float:
    return statistics.quantiles(xs, n=100)[int(p) - 1] * 1000 if len(xs) > 100 else float("nan")


def start_server(url: str, data: Path, port: int, name: str) -> subprocess.Popen:
    """``citybase serve --port`` in its own process group, its log in the data folder."""
    env = {**os.environ, "CITYBASE_DATABASE_URL": url, "CITYBASE_DATA_DIR": str(data)}
    logfile = open(data / f"server-{name}-{port}.log", "w")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([str(Path(sys.executable).with_name("citybase")), "serve", "--port", str(port)], env=env,
                            stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def run(name: str, args: argparse.Namespace, port: int, prepared: dict[str, tuple]) -> dict:
    kind, _, procs = name.partition("-")
    procs = int(procs or 1)
    if kind not in prepared:
        prepared[kind] = prepare(kind, args.open, args.size, keep=args.keep)
    url, data, tokens = prepared[kind]
    ports = [port + k for k in range(procs)]
    servers = [start_server(url, data, p, name) for p in ports]
    base = f"http://127.0.0.1:{ports[0]}"
    try:
        for p in ports:
            for _ in range(240):
                try:
                    if httpx.get(f"http://127.0.0.1:{p}/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            else:
                raise SystemExit(f"the {name} server on port {p} did not start; see the logs in {data}")
        with Session(make_engine(url)) as s:
            addresses = [a for (a,) in s.execute(select(Building.address).order_by(Building.id).limit(20000))]
            stored_before = s.execute(text("SELECT count(*) FROM ops_incidents WHERE channel = 'open311'")).scalar()
        texts = generate_corpus(10, seed=9, styles="heldout")
        codes = [c.code for c in CATEGORIES]
        key = tokens["citizen"]

        def post(rnd: random.Random):
            desc, code = rnd.choice(texts)
            form = {"api_key": key, "service_code": code if code in codes else "01001", "description": desc,
                    "address_string": rnd.choice(addresses).replace("上海市徐汇区", ""), "phone": f"13{rnd.randrange(10**9):09d}"}
            return "POST", "/open311/v2/requests.json", {"data": form}

        def health(_rnd: random.Random):
            return "GET", "/api/v1/health", {}

        if shutil.which("wrk"):
            bodies = [post(random.Random(k + 7919 * stored_before))[2]["data"] for k in range(6000)]
            wrk_load(base, "/api/v1/health", None, 3, args.clients, ports, warm_up=True)
            wrk_load(base, "/open311/v2/requests.json", bodies[5000:], 5, args.clients, ports, warm_up=True)
            ceiling, c50, c99, err_c = wrk_load(base, "/api/v1/health", None, args.seconds, args.clients, ports)
            rate, p50, p99, err_p = wrk_load(base, "/open311/v2/requests.json", bodies[:5000], args.seconds,
                                             args.clients, ports)
            tool = "wrk"
        else:
            if procs > 1:
                raise SystemExit("several serving processes need wrk (apt-get install wrk)")
            asyncio.run(load(base, health, 3, args.clients))  # warm-up
            asyncio.run(load(base, post, 3, args.clients))
            ceiling, lat_c, err_c, _ = asyncio.run(load(base, health, args.seconds, args.clients))
            rate, lat_p, err_p, _ = asyncio.run(load(base, post, args.seconds, args.clients))
            c50, c99, p50, p99 = pct(lat_c, 50), pct(lat_c, 99), pct(lat_p, 50), pct(lat_p, 99)
            tool = "httpx"
        with Session(make_engine(url)) as s:
            stored = s.execute(text("SELECT count(*) FROM ops_incidents WHERE channel = 'open311'")).scalar()
        return {"engine": name, "processes": procs, "tool": tool, "ceiling_rps": ceiling, "ceiling_p50": c50,
                "ceiling_p99": c99, "intake_rps": rate, "p50": p50, "p99": p99, "errors": err_p + err_c,
                "stored": stored - stored_before}
    finally:
        for server in servers:
            stop_server(server)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="sqlite,postgresql,postgresql-2",
                    help="sqlite, postgresql (one serving process), postgresql-N (N serving processes)")
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--size", default="district", help="demo city size (small only to try the script)")
    ap.add_argument("--keep", action="store_true", help="reuse the databases a previous run prepared")
    args = ap.parse_args()
    results, prepared = [], {}
    for i, name in enumerate(args.engines.split(",")):
        results.append(run(name, args, 8765 + 10 * i, prepared))
        print(json.dumps(results[-1]), flush=True)
    print(f"\nOpen311 POST requests with {args.open:,} open incidents, {args.clients} clients, {args.seconds:g} s each")
    print("aim: intake ≥ 0.3 × ceiling, p99 < 100 ms on PostgreSQL")
    print(f"{'engine':<15}{'ceiling/s':>11}{'c.p99 ms':>9}{'intake/s':>10}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}{'stored':>8}  load")
    for r in results:
        print(f"{r['engine']:<15}{r['ceiling_rps']:>11.0f}{r['ceiling_p99']:>9.1f}{r['intake_rps']:>10.1f}"
              f"{r['intake_rps'] / max(r['ceiling_rps'], 1e-9):>7.2f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}"
              f"{r['stored']:>8}  {r['tool']}")
    (OUT / "intake.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
