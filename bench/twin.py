"""The NGSI-LD twin (/ngsi-ld/v1) against a real `citybase serve` process, each figure beside the same server's
trivial endpoint (`GET /api/v1/health`) measured in the same run with the same number of concurrent clients:

1. loading: ``--entities`` AirQualityObserved entities (five numeric Properties, a ``district``, a ``location``
   Point in Shanghai, lon 121.3–121.6, lat 31.1–31.3) through ``POST /entityOperations/upsert`` in batches of
   ``--batch``: entities/s;
2. queries at that size, ``--clients`` concurrent clients for ``--seconds``: ``type`` + ``q``
   (``pm25>50;district=="…"``, the district drawn per request, ``limit=20``) and ``geoQ``
   (``near;maxDistance==500`` around a point drawn per request in the area): requests/s and p50/p95/p99;
3. updates of existing entities (pm25 and no2 with a new observedAt): batch upsert ``options=update`` of 100
   and of 1,000 entities, batch upsert of 1,000 whole entities (the default ``options=replace``, every
   attribute observed anew) (``--load-clients`` concurrent batches) and single ``PATCH /entities/{id}/attrs``
   (``--clients``): entities updated/s;
4. temporal aggregation: ``--temporal-entities`` entities (in their own NGSILD-Tenant) with 24 h of one pm25
   value a minute (1,440 instances each, one ``POST /temporal/entities`` per entity with the whole day as the
   array of instances), then ``options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H`` over the day
   for ``--temporal-sample`` entities one after another (latency p50/p95) and the same by type with
   ``limit=100`` (``--type-runs`` times, each given ``--slow-timeout`` seconds).

usage: python bench/twin.py [--engines sqlite,postgresql] [--entities 100000] [--temporal-entities 1000]
                            [--seconds 20] [--clients 50] [--load-clients 1] [--profile DIR] [--json out.json]

Loading is one batch at a time by default (``--load-clients``): SQLite admits one writer, and concurrent
batches there mostly measure failures. A loading request answered 5xx (or whose connection was lost) is
sent again, up to ``--retries`` times, so that every entity is stored for the later phases; the answers
are counted and printed all the same. ``--profile DIR`` samples the server with py-spy during each phase
and prints the functions its time went to.

The server runs with ``CITYBASE_TWIN_ANONYMOUS=write`` (no token) on a fresh database (``citybase db
upgrade``, no demo city): sqlite is the embedded default (SQLite file, ``memory://`` bus); postgresql a new
database on ``--postgres`` with NATS JetStream on ``--nats`` under its own ``?deployment=`` (streams deleted
afterwards). The load comes from an httpx asyncio client in this process, on the same machine: the health
figure is the ceiling of this client and server together. Anchors printed beside ours: Orion-LD ≈ 3,500
updates/s (2-CPU broker, 8-CPU database); Stellio 11 type+q queries/s at 100,000 entities, p95 1.35 s
(8 vCPU); the aim here is type+q 500/s with p95 < 50 ms."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CITYBASE, PG_ADMIN, Server, new_database, tear_down  # noqa: E402

NGSI = "/ngsi-ld/v1"
TYPE = "AirQualityObserved"
DISTRICTS = ("徐汇", "黄浦", "静安", "长宁", "普陀", "虹口", "杨浦", "闵行", "宝山", "浦东")
NUMERIC = {"pm25": (0, 150, "GQ"), "pm10": (0, 250, "GQ"), "no2": (0, 200, "GQ"), "o3": (0, 300, "GQ"),
           "temperature": (-5, 38, "CEL")}
TEMPORAL_TENANT = "bench-temporal"
DAY = datetime(2026, 11, 1, tzinfo=UTC)
HEALTH_SECONDS = 10.0
# (method, path, keyword arguments of httpx's request, units of work the request stands for)
Request = tuple[str, str, dict[str, Any], int]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def eid(i: int) -> str:
    return f"urn:ngsi-ld:{TYPE}:SH{i:06d}"


def prop(value: Any, unit: str | None, at: str) -> dict[str, Any]:
    p: dict[str, Any] = {"type": "Property", "value": value, "observedAt": at}
    if unit:
        p["unitCode"] = unit
    return p


def entity(i: int, rnd: random.Random, at: str) -> dict[str, Any]:
    """Entity ``i`` as an air-quality station of the city would send it."""
    e: dict[str, Any] = {"id": eid(i), "type": TYPE}
    for name, (lo, hi, unit) in NUMERIC.items():
        e[name] = prop(round(rnd.uniform(lo, hi), 1), unit, at)
    e["district"] = {"type": "Property", "value": rnd.choice(DISTRICTS)}
    e["location"] = {"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": [round(rnd.uniform(121.3, 121.6), 6), round(rnd.uniform(31.1, 31.3), 6)]}}
    return e


def update(rnd: random.Random, at: str) -> dict[str, Any]:
    """New pm25 and no2 readings of an existing entity."""
    return {"pm25": prop(round(rnd.uniform(0, 150), 1), "GQ", at), "no2": prop(round(rnd.uniform(0, 200), 1), "GQ", at)}


def pct(xs: list[float], p: int) -> float:
    """The p-th percentile in ms (nan with fewer than 20 samples)."""
    if len(xs) < 20:
        return float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1] * 1000


@dataclass
class Stats:
    """What a phase of load measured: requests, their latencies, the units of work done, the answers."""

    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    units: int = 0
    codes: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # the first few failures' answers
    retried: int = 0  # requests sent again after a 5xx or a lost connection (``drive(retries=…)``)
    given_up: int = 0  # requests that failed every time

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    @property
    def ups(self) -> float:
        return self.units / self.wall if self.wall else 0.0

    @property
    def failures(self) -> int:
        return sum(n for c, n in self.codes.items() if not (isinstance(c, int) and 200 <= c < 300))

    def summary(self) -> dict[str, Any]:
        return {"requests": len(self.latencies), "seconds": round(self.wall, 2), "requests_per_s": round(self.rps, 1),
                "units": self.units, "units_per_s": round(self.ups, 1), "p50_ms": round(pct(self.latencies, 50), 2),
                "p95_ms": round(pct(self.latencies, 95), 2), "p99_ms": round(pct(self.latencies, 99), 2),
                "codes": {str(c): n for c, n in sorted(self.codes.items(), key=str)}, "retried": self.retried,
                "given_up": self.given_up, "failures": self.samples}


def _done(r: httpx.Response, units: int) -> tuple[int, str | None]:
    """Units done by an answer, and its text when it is a failure: a 207 counts the entities of its
    ``success`` list."""
    if r.status_code == 207:
        body = r.json()
        ok = len(body.get("success", []))
        return ok, (r.text[:500] if body.get("errors") else None)
    if 200 <= r.status_code < 300:
        return units, None
    return 0, r.text[:500]


async def drive(base: str, make: Callable[[random.Random], Request | None], clients: int, seconds: float | None,
                headers: dict[str, str] | None = None, timeout: float = 120, progress: str | None = None,
                retries: int = 0) -> Stats:
    """``clients`` workers, each sending ``make``'s next request as soon as its last is answered, until
    ``seconds`` have passed or ``make`` returns None. With ``retries``, a request answered 5xx or whose
    connection was lost is sent again (after its Retry-After, else 1 s) up to that many times: a load of a
    fixed set of entities then stores them all, and the failures are still counted."""
    st = Stats()
    start = time.perf_counter()
    stop = start + seconds if seconds else math.inf

    async def worker(k: int) -> None:
        # a client (one connection) per worker: httpx's shared pool costs more the more connections it holds
        # (encode/httpx#3215), which would make 50 clients slower than 10
        rnd = random.Random(k * 7919 + 17)
        async with httpx.AsyncClient(base_url=base, timeout=timeout, headers=headers,
                                     limits=httpx.Limits(max_connections=1)) as client:
            while time.perf_counter() < stop:
                req = make(rnd)
                if req is None:
                    return
                method, path, kw, units = req
                for attempt in range(retries + 1):
                    t = time.perf_counter()
                    pause = 1.0
                    try:
                        r = await client.request(method, path, **kw)
                        st.codes[r.status_code] += 1
                        done, failure = _done(r, units)
                        st.units += done
                        again = r.status_code >= 500
                        pause = float(r.headers.get("retry-after", pause))
                    except httpx.HTTPError as exc:
                        st.codes[type(exc).__name__] += 1
                        failure, again = f"{type(exc).__name__}: {exc}", True
                    st.latencies.append(time.perf_counter() - t)
                    if failure and len(st.samples) < 3:
                        st.samples.append(f"{method} {path[:120]} → {failure}")
                    if not again:
                        break
                    if attempt < retries:
                        st.retried += 1
                        await asyncio.sleep(pause)
                    elif retries:
                        st.given_up += 1

    async def report() -> None:
        while True:
            await asyncio.sleep(10)
            el = time.perf_counter() - start
            print(f"    … {el:5.0f} s  {len(st.latencies):,} requests, {st.units:,} {progress} "
                  f"({st.units / el:,.0f}/s)", flush=True)

    reporter = asyncio.create_task(report()) if progress else None
    await asyncio.gather(*(worker(k) for k in range(clients)))
    st.wall = time.perf_counter() - start
    if reporter:
        reporter.cancel()
    for s in st.samples:
        print(f"    ! {s}", flush=True)
    return st


def top_frames(path: Path, n: int = 10) -> str:
    """Where the server spent its samples, from py-spy's raw (collapsed) output: the functions by their own
    time, and citybase's functions by the time spent in them and what they called."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f.rsplit(":", 1)[0] for f in stack.split(";")]  # without the line number
        total += int(count)
        own[frames[-1]] += int(count)
        for f in set(frames):
            if "citybase/" in f:
                inclusive[f] += int(count)
    if not total:
        return "      (no samples)"
    rows = ["      own time:"] + [f"      {k / total:5.1%}  {f[:140]}" for f, k in own.most_common(n)]
    rows += ["      citybase, with what it called:"] + [f"      {k / total:5.1%}  {f[:140]}"
                                                         for f, k in inclusive.most_common(n)]
    return "\n".join(rows)


def feed(requests: Iterator[Request]) -> Callable[[random.Random], Request | None]:
    """A ``make`` for ``drive`` that hands out a fixed series of requests, each once."""
    def make(_: random.Random) -> Request | None:
        return next(requests, None)

    return make


class Bench:
    """One engine's run: a served fresh database and the figures measured on it."""

    def __init__(self, kind: str, args: argparse.Namespace, server: Server) -> None:
        self.kind, self.args, self.server, self.base = kind, args, server, server.base
        self.health: dict[int, Stats] = {}
        self.results: dict[str, dict[str, Any]] = {}

    def run(self, make: Callable[[random.Random], Request | None], clients: int, seconds: float | None,
            profile: str | None = None, **kw: Any) -> Stats:
        """``drive`` the server; with ``--profile``, py-spy samples it meanwhile (``profile`` names the file)."""
        spy = None
        if self.args.profile and profile:
            out = Path(self.args.profile) / f"{self.kind}-{profile}.txt"
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(self.server.proc.pid),
                                    "--format", "raw", "--rate", "50", "--nonblocking", "-o", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return asyncio.run(drive(self.base, make, clients, seconds, **kw))
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait(timeout=60)
                print(f"    profile: {out}; top frames:\n" + top_frames(out), flush=True)

    def ceiling(self, clients: int) -> Stats:
        """GET /api/v1/health with ``clients`` concurrent clients (measured once per number of clients)."""
        if clients not in self.health:
            st = self.run(lambda _: ("GET", "/api/v1/health", {}, 1), clients, min(self.args.seconds, HEALTH_SECONDS))
            self.health[clients] = st
            print(f"  health, {clients} clients: {st.rps:,.0f}/s, p50 {pct(st.latencies, 50):.1f} ms, "
                  f"p95 {pct(st.latencies, 95):.1f} ms", flush=True)
        return self.health[clients]

    def record(self, name: str, st: Stats, clients: int, unit: str, **extra: Any) -> None:
        h = self.ceiling(clients)
        if any(isinstance(c, int) and c >= 500 for c in st.codes):
            print(f"  !!! {name}: server errors {dict(st.codes)}; see {self.server.data}/server-1.log", flush=True)
        self.results[name] = {"clients": clients, "unit": unit, **st.summary(), "health_requests_per_s": round(h.rps, 1),
                              "health_p50_ms": round(pct(h.latencies, 50), 2),
                              "health_p95_ms": round(pct(h.latencies, 95), 2), **extra}
        print(f"  {name}: {st.ups:,.1f} {unit}/s ({st.rps:,.1f} requests/s, p50 {pct(st.latencies, 50):.1f} ms, "
              f"p95 {pct(st.latencies, 95):.1f} ms, p99 {pct(st.latencies, 99):.1f} ms; answers {dict(st.codes)}"
              + (f"; {st.retried} sent again, {st.given_up} given up" if st.retried or st.given_up else "") + ")",
              flush=True)

    # ------------------------------------------------------------------------------------------ phases

    def load(self) -> None:
        n, size = self.args.entities, self.args.batch
        rnd = random.Random(2026)
        at = iso(DAY)

        def batches() -> Iterator[Request]:
            for lo in range(0, n, size):
                body = [entity(i, rnd, at) for i in range(lo, min(lo + size, n))]
                yield "POST", f"{NGSI}/entityOperations/upsert", {"json": body}, len(body)

        print(f"[{self.kind}] 1. loading {n:,} entities in batches of {size:,}, {self.args.load_clients} at a time …",
              flush=True)
        st = self.run(feed(batches()), self.args.load_clients, None, profile="load", progress="entities",
                      retries=self.args.retries)
        self.record("load (batch upsert, create)", st, self.args.load_clients, "entities", batch=size)
        count = httpx.get(f"{self.base}{NGSI}/entities", params={"type": TYPE, "count": "true", "limit": 1},
                          timeout=600).headers.get("NGSILD-Results-Count")
        print(f"  stored: {count} entities of type {TYPE}", flush=True)
        if self.kind == "postgresql":
            self.analyze()
        self.results["load (batch upsert, create)"]["stored"] = int(count) if count else None

    def analyze(self) -> None:
        """ANALYZE the twin's tables, as autovacuum would after a load this size: the shared test server runs
        with autovacuum off, and without statistics the planner sorts every match of a query by pk instead of
        walking pk and stopping at ``limit``."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.server.env["CITYBASE_DATABASE_URL"], isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            auto = c.execute(text("SHOW autovacuum")).scalar()
            t = time.perf_counter()
            c.execute(text("ANALYZE twin_entities"))
            c.execute(text("ANALYZE twin_history"))
        engine.dispose()
        print(f"  ANALYZE twin_entities, twin_history: {time.perf_counter() - t:.1f} s (autovacuum is {auto})", flush=True)

    def queries(self) -> None:
        c, secs = self.args.clients, self.args.seconds
        print(f"[{self.kind}] 2. queries at {self.args.entities:,} entities, {c} clients, {secs:g} s each …", flush=True)
        self.ceiling(c)

        def type_q(rnd: random.Random) -> Request:
            q = f'pm25>50;district=="{rnd.choice(DISTRICTS)}"'
            return "GET", f"{NGSI}/entities", {"params": {"type": TYPE, "q": q, "limit": 20}}, 1

        def geo_q(rnd: random.Random) -> Request:
            point = [round(rnd.uniform(121.32, 121.58), 5), round(rnd.uniform(31.12, 31.28), 5)]
            return "GET", f"{NGSI}/entities", {"params": {"type": TYPE, "georel": "near;maxDistance==500",
                                                          "geometry": "Point", "coordinates": json.dumps(point),
                                                          "limit": 20}}, 1

        for name, make in (("type+q query", type_q), ("geoQ near 500 m", geo_q)):
            probe = make(random.Random(0))
            r = httpx.get(self.base + probe[1], params=probe[2]["params"], timeout=600)
            print(f"  {name}: probe {r.status_code}, {len(r.json()) if r.status_code == 200 else r.text[:300]} "
                  f"entities in {r.elapsed.total_seconds() * 1000:.0f} ms", flush=True)
            st = self.run(make, c, secs, profile=name.split()[0])
            self.record(name, st, c, "queries")

    def updates(self) -> None:
        n, c, lc, secs = self.args.entities, self.args.clients, self.args.load_clients, self.args.seconds
        print(f"[{self.kind}] 3. updates of existing entities, {secs:g} s each …", flush=True)
        at = iter(range(10**9))

        def stamp() -> str:  # every update a later observation
            return iso(DAY + timedelta(days=1, seconds=next(at)))

        for size in (100, 1000):
            def batch(rnd: random.Random, size: int = size) -> Request:
                lo = rnd.randrange(0, max(n - size, 0) + 1)
                body = [{"id": eid(i), "type": TYPE, **update(rnd, stamp())} for i in range(lo, min(lo + size, n))]
                return "POST", f"{NGSI}/entityOperations/upsert", {"params": {"options": "update"}, "json": body}, len(body)

            st = self.run(batch, lc, secs, profile=f"update-batch-{size}")
            self.record(f"update, batch upsert of {size:,}", st, lc, "entities")

        def replace(rnd: random.Random, size: int = 1000) -> Request:  # the default: each entity sent whole
            lo = rnd.randrange(0, max(n - size, 0) + 1)
            body = [entity(i, rnd, stamp()) for i in range(lo, min(lo + size, n))]
            return "POST", f"{NGSI}/entityOperations/upsert", {"json": body}, len(body)

        st = self.run(replace, lc, secs, profile="update-batch-replace")
        self.record("update, batch upsert of 1,000 (replace)", st, lc, "entities")

        def patch(rnd: random.Random) -> Request:
            return "PATCH", f"{NGSI}/entities/{quote(eid(rnd.randrange(n)), safe=':')}/attrs", \
                {"json": update(rnd, stamp())}, 1

        st = self.run(patch, c, secs, profile="update-patch")
        self.record("update, PATCH /entities/{id}/attrs", st, c, "entities")

    def temporal(self) -> None:
        n, sample = self.args.temporal_entities, min(self.args.temporal_sample, self.args.temporal_entities)
        headers = {"NGSILD-Tenant": TEMPORAL_TENANT}
        print(f"[{self.kind}] 4. temporal: {n:,} entities × 1,440 instances (one request per entity) …", flush=True)

        def tid(i: int) -> str:
            return f"urn:ngsi-ld:{TYPE}:TS{i:05d}"

        def bodies() -> Iterator[Request]:
            rnd = random.Random(11)
            for i in range(n):
                base = rnd.uniform(20, 80)
                pm25 = [prop(round(max(0.0, base + 25 * math.sin(2 * math.pi * m / 1440) + rnd.gauss(0, 5)), 1), "GQ",
                             iso(DAY + timedelta(minutes=m))) for m in range(1440)]
                body = {"id": tid(i), "type": TYPE, "pm25": pm25,
                        "district": {"type": "Property", "value": rnd.choice(DISTRICTS)}}
                yield "POST", f"{NGSI}/temporal/entities", {"json": body}, 1440

        st = self.run(feed(bodies()), self.args.load_clients, None, profile="temporal-load", headers=headers,
                      progress="instances", retries=self.args.retries)
        self.record("temporal load (1,440 instances a request)", st, self.args.load_clients, "instances")

        params = {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "PT1H",
                  "timerel": "between", "timeAt": iso(DAY), "endTimeAt": iso(DAY + timedelta(days=1))}
        ids = random.Random(5).sample(range(n), sample)
        probe = httpx.get(f"{self.base}{NGSI}/temporal/entities/{tid(ids[0])}", params=params, headers=headers,
                          timeout=600)
        if probe.status_code == 200:
            avg = probe.json().get("pm25", {}).get("avg", [])
            print(f"  probe: {len(avg)} hourly averages of pm25 (first {avg[0] if avg else None})", flush=True)
        else:
            print(f"  probe: {probe.status_code} {probe.text[:300]}", flush=True)
        one = iter(ids)

        def agg(_: random.Random) -> Request | None:
            i = next(one, None)
            return None if i is None else ("GET", f"{NGSI}/temporal/entities/{tid(i)}", {"params": params}, 1)

        print(f"  aggregation of {sample} entities one after another …", flush=True)
        st = self.run(agg, 1, None, profile="temporal-aggregate", headers=headers)
        self.record("temporal avg PT1H, one entity", st, 1, "queries", sample=sample)

        by_type = {**params, "type": TYPE, "limit": 100}
        times: list[float] = []
        outcome = "done"
        for k in range(self.args.type_runs):
            t = time.perf_counter()
            try:
                r = httpx.get(f"{self.base}{NGSI}/temporal/entities", params=by_type, headers=headers,
                              timeout=self.args.slow_timeout)
            except httpx.TimeoutException:
                outcome = f"no answer within {self.args.slow_timeout:g} s"
                print(f"  by type, limit=100, run {k + 1}: {outcome}", flush=True)
                break
            times.append(time.perf_counter() - t)
            got = len(r.json()) if r.status_code == 200 else r.text[:300]
            print(f"  by type, limit=100, run {k + 1}: {r.status_code}, {got} entities in {times[-1]:.2f} s", flush=True)
            if r.status_code != 200:
                outcome = f"answer {r.status_code}"
                break
        self.results["temporal avg PT1H, by type, limit=100"] = {
            "clients": 1, "unit": "s", "runs_s": [round(x, 3) for x in times], "outcome": outcome,
            "median_s": round(statistics.median(times), 3) if times else None}


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix=f"cb-twin-{kind}-"))
    drop = None
    if kind == "sqlite":
        db_url, bus_url = f"sqlite:///{data / 'citybase.sqlite3'}", "memory://"
    else:
        db_url, drop = new_database(args.postgres, "bench_twin")
        bus_url = f"{args.nats}?deployment=benchtwin{uuid.uuid4().hex[:6]}"
    server = Server(data, db_url, bus_url, CITYBASE_TWIN_ANONYMOUS="write")
    bench = Bench(kind, args, server)
    phases = [p for p in ("load", "queries", "updates", "temporal") if p in args.phases.split(",")]
    try:
        print(f"[{kind}] migrating a fresh database in {data} …", flush=True)
        with open(data / "upgrade.log", "w") as log:
            subprocess.run([CITYBASE, "db", "upgrade"], env=server.env, stdout=log, stderr=subprocess.STDOUT, check=True)
        server.start()
        print(f"[{kind}] serving on {server.base} (pid {server.proc.pid})", flush=True)
        for p in phases:
            getattr(bench, p)()
    finally:
        tear_down(server, kind, bus_url, data, db_url, drop, keep=args.keep_data)
    return {"engine": kind, "entities": args.entities, "temporal_entities": args.temporal_entities,
            "results": bench.results}


ANCHORS = {
    "type+q query": "Stellio 11/s, p95 1.35 s (8 vCPU); aim 500/s, p95 < 50 ms",
    "update, batch upsert of 1,000": "Orion-LD ≈ 3,500 updates/s (2-CPU broker, 8-CPU DB)",
    "update, batch upsert of 1,000 (replace)": "Orion-LD ≈ 3,500 updates/s",
    "update, PATCH /entities/{id}/attrs": "Orion-LD ≈ 3,500 updates/s",
}


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| engine | figure | clients | ours | p50 / p95 / p99 ms | health beside it (req/s, p50 ms) | "
             "answers not 2xx | anchor |", "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for name, r in res["results"].items():
            if "runs_s" in r:
                ours = f"{r['median_s']} s (median of {len(r['runs_s'])})" if r["runs_s"] else r["outcome"]
                lines.append(f"| {res['engine']} | {name} | 1 | {ours} | | | {r['outcome']} | |")
                continue
            ours = f"{r['units_per_s']:,.1f} {r['unit']}/s"
            bad = ", ".join(f"{n} × {c}" for c, n in r["codes"].items() if not c.startswith("2")) or "0"
            if r["retried"] or r["given_up"]:
                bad += f" ({r['retried']} sent again, {r['given_up']} given up)"
            if r["unit"] != "queries":
                ours += f" ({r['requests_per_s']:,.1f} requests/s)"
            lines.append(f"| {res['engine']} | {name} | {r['clients']} | {ours} | {r['p50_ms']:.1f} / {r['p95_ms']:.1f} / "
                         f"{r['p99_ms']:.1f} | {r['health_requests_per_s']:,.0f}/s, {r['health_p50_ms']:.1f} | "
                         f"{bad} | {ANCHORS.get(name, '')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", default="sqlite", help="sqlite, postgresql or both (comma-separated)")
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000, help="entities per upsert when loading")
    ap.add_argument("--load-clients", type=int, default=1,
                    help="batches in flight at once (loading, batch updates, temporal loading)")
    ap.add_argument("--retries", type=int, default=5,
                    help="times a loading request answered 5xx (or lost) is sent again; counted in the figures")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients of queries and PATCH")
    ap.add_argument("--seconds", type=float, default=20, help="length of each timed phase")
    ap.add_argument("--temporal-entities", type=int, default=1000)
    ap.add_argument("--temporal-sample", type=int, default=200, help="entities aggregated one after another")
    ap.add_argument("--type-runs", type=int, default=3, help="runs of the temporal query by type")
    ap.add_argument("--slow-timeout", type=float, default=300, help="seconds the query by type is given")
    ap.add_argument("--phases", default="load,queries,updates,temporal")
    ap.add_argument("--postgres", default=PG_ADMIN)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--profile", help="a folder: py-spy samples the server during each phase (raw stacks there), "
                                      "and the top functions are printed")
    ap.add_argument("--keep-data", action="store_true", help="keep the data folder (server logs, SQLite file) and the PostgreSQL database")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    results = [run(k, args) for k in args.engines.split(",")]
    print("\n" + table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
