"""Metrics by department, street and all over 1,000,000 incidents: the grouped queries against the
former in-Python computation (every incident of the period loaded into Python), on SQLite and PostgreSQL.

usage: python bench/metrics.py [--url DATABASE_URL ...] [--incidents 1000000] [--old-at 100000]
                               [--old-full] [--runs 5]

Without --url: SQLite in bench/out/metrics.sqlite3 and PostgreSQL (database citybase_metrics on the
local server). Each database gets the small demo city (areas, departments, categories), then
incidents in bulk (COPY on PostgreSQL) spread over the past 365 days. The metrics read only the
incident rows, so no tasks or timeline rows are generated. The figures are measured first at
--old-at incidents (both implementations, and their results compared), then at --incidents (the
grouped queries; the old computation there too with --old-full). Each figure is the median of --runs
runs (the old computation: of 3 runs, or 1 at the full size)."""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from citybase.core.timeutil import as_utc
from citybase.demo.generator import generate
from citybase.geo.models import Building
from citybase.ops.catalogue import service as catalogue
from citybase.ops.metrics import service as metrics
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.states import DONE, Status
from citybase.registry import service as registry
from citybase.storage.db import bulk_insert, make_engine
from citybase.storage.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
MONTH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
COLUMNS = ["id", "code", "channel", "status", "category_code", "category_confirmed", "priority", "description",
           "lon", "lat", "building_id", "grid_id", "community_id", "street_id", "main_department_id", "routing",
           "deadline_at", "repeat_count", "return_count", "reopen_count", "satisfaction", "created_at", "updated_at",
           "registered_at", "dispatched_at", "first_contact_at", "closed_at"]


# -- the former computation (ops/metrics/service.py before the grouped queries), for the comparison --

_COLS = (Incident.id, Incident.status, Incident.channel, Incident.category_code, Incident.main_department_id,
         Incident.street_id, Incident.grid_id, Incident.deadline_at, Incident.registered_at, Incident.dispatched_at,
         Incident.closed_at, Incident.first_contact_at, Incident.satisfaction, Incident.return_count,
         Incident.created_at)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def old_compute(session: Session, by: str, since: datetime | None, until: datetime | None) -> list[dict]:
    key = {"department": 4, "street": 5, "grid": 6, "category": 3, "channel": 2, "all": None}[by]
    q = select(*_COLS)
    if since:
        q = q.where(Incident.created_at >= as_utc(since))
    if until:
        q = q.where(Incident.created_at < as_utc(until))
    groups: dict[Any, list[tuple]] = defaultdict(list)
    for row in session.execute(q):
        groups[row[key] if key is not None else "all"].append(tuple(row))
    names = metrics._names(session, by)
    out = []
    for gkey, rows in groups.items():
        reports = len(rows)
        merged = sum(1 for r in rows if r[1] == Status.MERGED)
        cases = [r for r in rows if r[1] != Status.MERGED]
        closed = [r for r in cases if r[1] == Status.CLOSED and r[10] is not None]
        with_deadline = [r for r in closed if r[7] is not None]
        on_time = sum(1 for r in with_deadline if as_utc(r[10]) <= as_utc(r[7]))
        hours = [(as_utc(r[10]) - as_utc(r[8])).total_seconds() / 3600 for r in closed if r[8] is not None]
        rated = [r for r in cases if r[12]]
        dispatched = [r for r in cases if r[9] is not None]
        contacted = sum(1 for r in dispatched
                        if r[11] is not None and as_utc(r[11]) - as_utc(r[9]) <= timedelta(hours=24))
        out.append({
            "key": gkey, "name": names.get(gkey, str(gkey)), "reports": reports, "volume": len(cases),
            "open": sum(1 for r in cases if r[1] not in DONE), "closed": len(closed),
            "on_time_rate": _ratio(on_time, len(with_deadline)),
            "mean_handling_hours": round(statistics.fmean(hours), 2) if hours else None,
            "median_handling_hours": round(statistics.median(hours), 2) if hours else None,
            "satisfaction_rate": _ratio(sum(1 for r in rated if r[12] in ("满意", "基本满意")), len(rated)),
            "repeat_rate": _ratio(merged, reports),
            "return_rate": _ratio(sum(1 for r in dispatched if (r[13] or 0) > 0), len(dispatched)),
            "first_contact_rate": _ratio(contacted, len(dispatched)),
        })
    out.sort(key=lambda r: -r["reports"])
    return out


# -- the data ------------------------------------------------------------------------------------------


def prepare(url: str | None, kind: str) -> Engine:
    """A fresh database with the small demo city and no incidents."""
    if url is None and kind == "sqlite":
        OUT.mkdir(exist_ok=True)
        path = OUT / "metrics.sqlite3"
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    elif url is None:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("DROP DATABASE IF EXISTS citybase_metrics WITH (FORCE)"))
            c.execute(text("CREATE DATABASE citybase_metrics"))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/citybase_metrics"
    engine = make_engine(url)
    upgrade(engine)
    generate(engine, size="small", seed=2026)
    return engine


def incident_rows(engine: Engine, first: int, last: int, seed: int):
    """Incidents ``first``..``last`` (ids), created in order over the 365 days before NOW, most of the older
    ones closed; times to the microsecond."""
    with Session(engine) as s:
        buildings = s.execute(select(Building.id, Building.lon, Building.lat, Building.grid_id,
                                     Building.community_id, Building.street_id)).all()
        departments = [d.id for d in registry.list_departments(session=s)]
        categories = sorted(catalogue.category_names(session=s))
    rnd = random.Random(seed)
    owner = {c: rnd.choice(departments) for c in categories}  # 权责清单: one main department per category
    channels = ["hotline"] * 12 + ["api"] * 3 + ["open311"] * 2 + ["inspector"] * 2 + ["iot"]
    sqlite = engine.dialect.name == "sqlite"

    def ts(t: datetime | None) -> Any:  # SQLite: the text SQLAlchemy writes; PostgreSQL: COPY takes the datetime
        if t is None or not sqlite:
            return t
        return t.strftime("%Y-%m-%d %H:%M:%S.%f")

    for i in range(first, last + 1):
        b = rnd.choice(buildings)
        cat = rnd.choice(categories)
        # taken in id order over the year, as a live system inserts them
        created = NOW - timedelta(days=365) * (1 - (i - first + rnd.random()) / (last - first + 1))
        age_h = (NOW - created).total_seconds() / 3600
        u = rnd.random()
        registered = dispatched = contact = closed = satisfaction = None
        returns = 0
        if u < 0.08:
            status = Status.MERGED
        elif u < 0.12:
            status = Status.REJECTED
        else:
            registered = created + timedelta(minutes=rnd.uniform(1, 30))
            dispatched = registered + timedelta(minutes=rnd.uniform(1, 60))
            returns = 1 if rnd.random() < 0.06 else 0
            if rnd.random() < 0.9:
                contact = dispatched + timedelta(hours=rnd.expovariate(1 / 8))
            handling = rnd.expovariate(1 / 40)
            if handling < age_h - 1:
                status = Status.CLOSED
                closed = dispatched + timedelta(hours=handling)
                satisfaction = rnd.choices([None, "满意", "基本满意", "不满意"], [30, 50, 12, 8])[0]
            else:
                status = rnd.choice([Status.DISPATCHED, Status.HANDLING, Status.VERIFYING])
        deadline = created + timedelta(hours=rnd.choice([24, 72, 120, 168]))
        yield (i, f"M{i:015d}", rnd.choice(channels), status.value, cat, True, "normal", "测试", b[1], b[2], b[0],
               b[3], b[4], b[5], owner[cat], "{}", ts(deadline), 0, returns, 0, satisfaction, ts(created),
               ts(created), ts(registered), ts(dispatched), ts(contact), ts(closed))


def load(engine: Engine, first: int, last: int) -> float:
    start = time.perf_counter()
    bulk_insert(engine, "ops_incidents", COLUMNS, incident_rows(engine, first, last, seed=first))
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("SELECT setval(pg_get_serial_sequence('ops_incidents', 'id'), "
                           "(SELECT MAX(id) FROM ops_incidents))"))
    with engine.connect() as c:  # ANALYZE outside a transaction block on both engines
        c.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return time.perf_counter() - start


# -- the measurement -------------------------------------------------------------------------------------


def timed(engine: Engine, fn, runs: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        with Session(engine) as s:
            start = time.perf_counter()
            out = fn(s)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(engine: Engine, n: int, runs: int, old_runs: int) -> None:
    print(f"  {n:,} incidents: median of {runs} runs (old: of {old_runs})" if old_runs else
          f"  {n:,} incidents: median of {runs} runs", flush=True)
    for label, (since, until) in (("whole year", (None, None)), ("one month", MONTH)):
        for by in ("department", "street", "all"):
            new_t, new = timed(engine, lambda s, by=by, since=since, until=until:
                               metrics.compute(session=s, by=by, since=since, until=until), runs)
            line = f"    by={by:<10} {label:<10} grouped {new_t * 1000:8.1f} ms"
            if old_runs:
                old_t, old = timed(engine, lambda s, by=by, since=since, until=until:
                                   old_compute(s, by, since, until), old_runs)
                same = _same(old, new)
                line += f"   in Python {old_t * 1000:9.1f} ms   ×{old_t / new_t:5.1f}   {same}"
            print(line, flush=True)


def _same(old: list[dict], new: list[dict]) -> str:
    """Whether both give the same rows. The old order of groups with as many reports was the order the
    engine happened to scan them in (by id, or by created_at through its index for a period); the
    grouped queries put the group reported first first."""
    if old == new:
        return "identical"
    if sorted(old, key=lambda r: str(r["key"])) == sorted(new, key=lambda r: str(r["key"])):
        return "identical rows (tied groups in another order)"
    return f"DIFFERENT ({_differences(old, new)})"


def _differences(old: list[dict], new: list[dict]) -> str:
    if len(old) != len(new):
        return f"{len(old)} rows against {len(new)}"
    diffs = [(k, a[k], b[k]) for a, b in zip(old, new, strict=True) for k in a if a[k] != b[k]]
    return "; ".join(f"{k}: {x} vs {y}" for k, x, y in diffs[:3])


def explain(engine: Engine) -> None:
    """The PostgreSQL plans of the department figures over one month (to judge whether an index helps)."""
    from citybase.ops.metrics.repository import metrics_repository

    with Session(engine) as s:
        repo = metrics_repository(s)
        captured: list[Any] = []
        real = s.execute
        s.execute = lambda q, *a, **k: captured.append(q) or real(q, *a, **k)  # type: ignore[method-assign]
        repo.figures(by="department", since=MONTH[0], until=MONTH[1])
        repo.handling(by="department", since=MONTH[0], until=MONTH[1])
        s.execute = real  # type: ignore[method-assign]
        for q in captured:
            sql = q.compile(engine, compile_kwargs={"literal_binds": True})
            plan = s.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")).scalars().all()
            print("    " + "\n    ".join(plan))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", action="append", help="a database to fill (repeatable); default: SQLite and PostgreSQL")
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--old-at", type=int, default=100_000, help="the size at which both are measured and compared")
    ap.add_argument("--old-full", action="store_true", help="also time the old computation at --incidents (once)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--explain", action="store_true", help="print the PostgreSQL plans at the full size")
    args = ap.parse_args()
    targets = [(u, make_engine(u).dialect.name) for u in args.url] if args.url else \
        [(None, "sqlite"), (None, "postgresql")]
    for url, kind in targets:
        print(f"[{kind}] the small demo city …", flush=True)
        engine = prepare(url, kind)
        small = min(args.old_at, args.incidents)
        print(f"[{kind}] loading {small:,} incidents: {load(engine, 1, small):.1f} s", flush=True)
        measure(engine, small, args.runs, old_runs=3)
        if args.incidents > small:
            print(f"[{kind}] loading {args.incidents - small:,} more: {load(engine, small + 1, args.incidents):.1f} s",
                  flush=True)
            measure(engine, args.incidents, args.runs, old_runs=1 if args.old_full else 0)
        if args.explain and kind == "postgresql":
            explain(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
