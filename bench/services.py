"""一网通办 figures.

1. The demo catalogue's own 材料减免率 and prefill share: of every item's materials, how many a licence, a base
   registry or another item's result proves (never asked for), item by item and over the 一件事 bundles (where
   materials are also deduplicated); "now" counts only the licences the base registries prove until the licence
   library is wired in (ID card, household register, business licence), "library" every licence type.
2. Against a real ``citybase serve`` (the small demo city, 一网通办 loaded) with ``--past`` applications
   (default 100,000) bulk-loaded into its database before it starts (``storage.bulk_insert``: COPY on
   PostgreSQL, one executemany transaction on SQLite), cloned from a few filed through the service itself
   and spread over the past year (done and rated, open, late, corrected): submitting a 开办企业 bundle as a
   firm (start with prefill, consent, upload a one-page PDF for each of the 3 materials to bring, submit:
   6 requests, fan-out to 5 departments) by
   ``--clients`` clients, beside the same server's ``GET /api/v1/health`` in the same run: submissions/s
   and p50/p99 of a whole submission; then ``GET /api/v1/services/kpis`` at that size (all, one
   department, one item, the last month): latency of each.

    PYTHONPATH=src python bench/services.py --engines sqlite,postgresql [--past 100000] [--runs 200]
                                            [--clients 1] [--profile DIR] [--keep-data]

``--profile DIR`` samples the server with py-spy during the submissions and prints where its time went.
sqlite is a SQLite file with the ``memory://`` bus; postgresql a new database on ``--postgres`` with NATS on
``--nats`` under its own ``?deployment=`` (streams deleted afterwards).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from citybase.demo.documents import one_page_pdf
from citybase.services import forms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import PG_ADMIN, Server, new_database, tear_down  # noqa: E402

from twin import top_frames  # noqa: E402

REGISTRY_LICENCES = {"id_card", "household_register", "business_licence"}


def catalogue_figures() -> None:
    data = json.loads(files("citybase.services").joinpath("data/catalogue.json").read_text(encoding="utf-8"))
    items = {i["code"]: i for i in data["items"]}

    def proven(m: dict, inside: set[str], library: bool) -> bool:
        s = m["source"]
        if s["kind"] == "licence":
            return library or s["type"] in REGISTRY_LICENCES
        return s["kind"] == "registry" or (s["kind"] == "item" and s["item"] in inside)

    mats = [m for i in items.values() for m in i["materials"]]
    fields = [p for i in items.values() for p in i["form"]["properties"].values()]
    print(f"catalogue: {len(items)} items, {len(mats)} materials, {len(fields)} fields")
    for library in (False, True):
        n = sum(proven(m, set(), library) for m in mats)
        print(f"  item by item, {'library' if library else 'now'}: {n}/{len(mats)} materials exempted "
              f"({n / len(mats):.1%})")
    pre = sum("x-prefill" in p for p in fields)
    print(f"  fields prefilled from the registries: {pre}/{len(fields)} ({pre / len(fields):.1%})")
    print("bundles: materials one by one → to bring (now / library); fields one by one → to fill; days")
    for b in data["bundles"]:
        ms = [forms.Member(code=m["item"], name=items[m["item"]]["name"], department_id=0,
                           form=items[m["item"]]["form"], materials=items[m["item"]]["materials"],
                           committed_days=items[m["item"]]["committed_days"],
                           statutory_days=items[m["item"]]["statutory_days"],
                           max_visits=items[m["item"]]["max_visits"], after=tuple(m["after"])) for m in b["members"]]
        inside = {m.code for m in ms}
        merged = forms.merge_materials(ms)
        each = sum(len(m.materials) for m in ms)
        now = sum(not proven(m, inside, False) for m in merged)
        lib = sum(not proven(m, inside, True) for m in merged)
        s = forms.savings(ms)
        print(f"  {b['name']}: materials {each} → {now} / {lib} (exempted {1 - now / each:.0%} / {1 - lib / each:.0%}); "
              f"fields {s['fields']['one_by_one']} → {s['fields']['to_fill']}; days {s['days']['one_by_one']} → "
              f"{s['days']['bundle']}")


BODY = {"form": {"applicant_name": "张三", "id_number": "11010519491231002X", "registered_capital": 100,
                  "business_scope": "软件开发；信息技术咨询服务", "employees": 5, "bank_account": "6222020200112233445"},
        "consent": ["id_card", "business_licence"]}
BROUGHT = ("applicant:公司章程", "applicant:住所使用证明", "licence:id_card")  # uploaded, one PDF each


# ------------------------------------------------------------------------------------------ the past, in bulk

def _templates(engine: Any, n: int) -> list[int]:
    """``n`` applications filed through the service itself (the living demo's filing path), to be cloned."""
    from citybase.demo.services_simulation import ServicesSimulation

    sim = ServicesSimulation(engine, rate=0, seed=1,  # its uploads (not cloned) go to a scratch folder
                             data_dir=Path(tempfile.gettempdir()) / "citybase-bench-services")
    for _ in range(n):
        sim._guard(sim._apply)  # noqa: SLF001 - the simulation's own filing path
    from sqlalchemy import text

    with engine.connect() as c:
        return list(c.scalars(text("SELECT id FROM services_applications WHERE status = 'processing' ORDER BY id")))


def load_past(engine: Any, past: int, seed: int = 7) -> dict[str, Any]:
    """``past`` applications with their parts, timelines, ratings and rectifications, bulk-loaded: each a copy of
    a filed one (its bundle, form, exemptions) for another applicant of the same kind, submitted in the past
    365 days; older ones done (90 % approved, a correction asked for in 8 %), rated in 60 % (a rectification
    for each bad one, 70 % of them done), recent ones open (some late, some paused for a correction)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    import citybase.api.app  # noqa: F401 - every domain's tables, for the foreign keys
    from citybase.services import workdays
    from citybase.services.models import Application, Part
    from citybase.storage.db import bulk_insert

    t0 = time.perf_counter()
    ids = _templates(engine, 40)
    pg = engine.dialect.name == "postgresql"
    with Session(engine) as s:
        tmpl = list(s.query(Application).filter(Application.id.in_(ids)))
        tparts = {a.id: list(s.query(Part).filter(Part.application_id == a.id).order_by(Part.id)) for a in tmpl}
        persons = list(s.scalars(text("SELECT id FROM persons")))
        entities = list(s.scalars(text("SELECT id FROM legal_entities")))
        top = {t: s.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) for t in
               ("services_applications", "services_parts", "services_timeline", "services_ratings",
                "services_rectifications")}
    rnd = random.Random(seed)
    now = datetime.now(UTC)

    def ts(d: datetime | None) -> Any:  # SQLite keeps UTC wall time as SQLAlchemy writes it
        if d is None or pg:
            return d
        return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    apps, parts, tl, ratings, rects = [], [], [], [], []
    aid, pid, tid, rid, xid = (top[t] for t in top)
    per_day: dict[str, int] = {}
    for _ in range(past):
        t = rnd.choice(tmpl)
        aid += 1
        submitted = now - timedelta(days=365 * rnd.random() ** 0.8, seconds=rnd.randrange(3600))
        day = f"{submitted.astimezone(workdays.SHANGHAI):%Y%m%d}"
        per_day[day] = per_day.get(day, 0) + 1
        code = f"XH{day}{per_day[day] + 500000:06d}"  # out of the way of the day's own codes
        age = (now - submitted).days
        done = age > 20 or (age > 3 and rnd.random() < 0.5)
        corrected = rnd.random() < 0.08
        refused = done and rnd.random() < 0.1
        person = t.applicant_kind == "person"
        holder = rnd.choice(persons if person else entities)
        tparts_ = tparts[t.id]
        done_at = None
        accepted = submitted + timedelta(hours=rnd.uniform(0.2, 20))
        for k, tp in enumerate(tparts_):
            pid += 1
            deadline = workdays.due(accepted, tp.committed_days)
            warn = workdays.warn(accepted, tp.committed_days)
            if done:
                finished = accepted + timedelta(days=rnd.uniform(0, max(1, tp.committed_days) * 1.3))
                decision = "refuse" if refused and k == 0 else "approve"
                status, acc, fin, paused = "completed", accepted, finished, None
                done_at = max(done_at or finished, finished)
            else:
                status = rnd.choice(("pending", "accepted", "reviewing", "correction") if not tp.after or k == 0
                                    else ("waiting",))
                acc = None if status in ("pending", "waiting") else accepted
                fin, decision = None, None
                paused = accepted + timedelta(days=1) if status == "correction" else None
            parts.append((pid, aid, tp.item_version_id, tp.item_code, tp.department_id, status, tp.after,
                          tp.committed_days, ts(acc), ts(warn if acc else None), ts(deadline if acc else None),
                          ts(paused), "accepted" if paused else None, int(corrected and k == 0), decision, None,
                          ts(fin), ts(fin), None, 1))
            if corrected and k == 0:
                tid += 1
                tl.append((tid, aid, pid, ts(accepted + timedelta(hours=2)), "clerk", "request-correction",
                           "accepted", "correction", None))
        for action, at, before, after in (("draft", submitted - timedelta(minutes=5), None, "draft"),
                                          ("submit", submitted, "draft", "processing")):
            tid += 1
            tl.append((tid, aid, None, ts(at), "applicant", action, before, after, None))
        outcome = ("partly" if len(tparts_) > 1 else "refused") if refused else "approved" if done else None
        apps.append((aid, code, "done" if done else "processing", outcome, t.bundle_id, t.bundle_version_id, t.item_version_id,
                     t.applicant_kind, holder if person else None, None if person else holder, None, t.filed_by,
                     t.channel if rnd.random() < 0.5 else rnd.choice(("online", "online", "online", "window")),
                     t.members, t.form, t.prefilled, t.exemptions, t.consent, t.provided, t.promised_days,
                     ts(submitted - timedelta(minutes=5)), ts(done_at or submitted), ts(submitted), ts(done_at), 1))
        if done and rnd.random() < 0.6:
            rid += 1
            grade = rnd.choices([5, 4, 3, 2, 1], weights=[70, 18, 7, 3, 2])[0]
            at = done_at + timedelta(hours=rnd.uniform(1, 72))
            ratings.append((rid, aid, grade, "online", None, "applicant", ts(at)))
            if grade <= 2:
                xid += 1
                fixed = rnd.random() < 0.7
                rects.append((xid, rid, aid, tparts_[-1].department_id, "done" if fixed else "open",
                              ts(workdays.due(at, 5)), "已整改" if fixed else None, ts(at + timedelta(days=2)) if fixed else None,
                              "申请人认可" if fixed else None, ts(at), ts(at + timedelta(days=2)) if fixed else None))
    cols = {
        "services_applications": ("id", "code", "status", "outcome", "bundle_id", "bundle_version_id", "item_version_id",
                                  "applicant_kind",
                                  "person_id", "legal_entity_id", "owner_user_id", "filed_by", "channel", "members",
                                  "form", "prefilled", "exemptions", "consent", "provided", "promised_days",
                                  "created_at", "updated_at", "submitted_at", "done_at", "version"),
        "services_parts": ("id", "application_id", "item_version_id", "item_code", "department_id", "status", "after",
                           "committed_days", "accepted_at", "warn_at", "deadline_at", "paused_at", "paused_from",
                           "corrections", "decision", "reason", "decided_at", "done_at", "supervised_at", "version"),
        "services_timeline": ("id", "application_id", "part_id", "at", "actor", "action", "from_status", "to_status",
                              "note"),
        "services_ratings": ("id", "application_id", "grade", "channel", "comment", "by", "at"),
        "services_rectifications": ("id", "rating_id", "application_id", "department_id", "status", "deadline_at",
                                    "action_taken", "callback_at", "callback_note", "created_at", "done_at"),
    }
    made = time.perf_counter() - t0
    t1 = time.perf_counter()
    counts = {}
    for table, rows in zip(cols, (apps, parts, tl, ratings, rects), strict=True):
        quoted = [f'"{c}"' if c in ("after", "by") else c for c in cols[table]]
        counts[table] = bulk_insert(engine, table, quoted, rows)
    with engine.begin() as c:
        for table in cols:
            if pg:  # ids given explicitly: move the sequences past them
                c.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))"))
        c.execute(text("ANALYZE"))
    print(f"  past: {counts['services_applications']:,} applications, {counts['services_parts']:,} parts, "
          f"{counts['services_timeline']:,} timeline entries, {counts['services_ratings']:,} ratings, "
          f"{counts['services_rectifications']:,} rectifications: rows made in {made:.0f} s, "
          f"loaded in {time.perf_counter() - t1:.0f} s", flush=True)
    return counts


# ------------------------------------------------------------------------------------------ the load

def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p / 100))] * 1000 if s else float("nan")


def drive(fn: Any, runs: int, clients: int) -> tuple[float, list[float], int]:
    """``runs`` calls of ``fn(client)`` over ``clients`` threads (an httpx.Client each): per second, latencies,
    failures."""
    lat: list[float] = []
    failed = [0]
    left = [runs]
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=120) as c:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                t = time.perf_counter()
                ok = fn(c)
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    failed[0] += not ok
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return runs / (time.perf_counter() - t0), lat, failed[0]


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from citybase.storage.db import make_engine

    data = Path(tempfile.mkdtemp(prefix=f"cb-services-{kind}-"))
    drop = None
    if kind == "sqlite":
        db_url, bus_url = f"sqlite:///{data / 'citybase.sqlite3'}", "memory://"
    else:
        db_url, drop = new_database(args.postgres, "bench_services")
        bus_url = f"{args.nats}?deployment=benchsv{uuid.uuid4().hex[:6]}"
    server = Server(data, db_url, bus_url)
    out: dict[str, Any] = {"engine": kind, "past": args.past}
    try:
        print(f"[{kind}] citybase demo --size small --no-serve in {data} …", flush=True)
        tokens = server.setup()
        engine = make_engine(db_url)
        out["counts"] = load_past(engine, args.past)
        engine.dispose()
        server.start()
        print(f"[{kind}] serving on {server.base} (pid {server.proc.pid})", flush=True)
        base = server.base + "/api/v1"
        firm = {"Authorization": f"Bearer {tokens['firm']}"}
        analyst = {"Authorization": f"Bearer {tokens['analyst']}"}

        def health(c: httpx.Client) -> bool:
            return c.get(base + "/health").status_code == 200

        def submission(c: httpx.Client) -> bool:
            r = c.post(base + "/services/applications", json={"bundle": "business-start"}, headers=firm)
            if r.status_code != 201:
                return False
            app = r.json()
            form = {k: v for k, v in BODY["form"].items() if k not in app["form"]}  # never over the registry's
            r = c.patch(f"{base}/services/applications/{app['id']}", json={**BODY, "form": form}, headers=firm)
            if r.status_code != 200:
                return False
            for key in BROUGHT:
                r = c.post(f"{base}/services/applications/{app['id']}/materials/{quote(key, safe='')}", headers=firm,
                           files={"file": (key.split(":")[1] + ".pdf", one_page_pdf(f"{app['code']} {uuid.uuid4()}"),
                                           "application/pdf")})
                if r.status_code != 201:
                    return False
            r = c.post(f"{base}/services/applications/{app['id']}/submit", headers=firm)
            return r.status_code == 200 and len(r.json()["parts"]) == 5

        for fn in (health, submission):  # warm up
            drive(fn, 3, 1)
        spy = None
        if args.profile:
            prof = Path(args.profile) / f"{kind}-submissions.txt"
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                                    str(server.proc.pid), "--format", "raw", "--rate", "100", "--nonblocking",
                                    "-o", str(prof)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        for name, fn, runs in (("health", health, args.runs * 3), ("开办企业 submission (6 requests)", submission,
                                                                   args.runs),
                               ("health, after", health, args.runs * 3)):
            rps, lat, failed = drive(fn, runs, args.clients)
            out[name] = {"per_s": round(rps, 1), "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
                         "failed": failed, "runs": runs, "clients": args.clients}
            print(f"  {name}, {args.clients} client(s): {rps:.1f}/s, p50 {pct(lat, 50):.1f} ms, "
                  f"p99 {pct(lat, 99):.1f} ms, failed {failed}/{runs}", flush=True)
            if spy is not None and name.startswith("开办企业"):
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
                print(f"    profile: {prof}; top frames:\n" + top_frames(prof, 14), flush=True)
                spy = None
        month = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        with httpx.Client(timeout=300) as c:
            t = time.perf_counter()
            r = c.get(base + "/services/kpis", headers=analyst)
            if r.status_code != 200:
                print(f"  kpis: {r.status_code} after {time.perf_counter() - t:.0f} s: {r.text[:300]}", flush=True)
                return out
            k = r.json()
            dept = max(k["by_department"], key=lambda d: d["parts"])
            code = next(d["code"] for d in c.get(base + "/departments", headers=analyst).json()
                        if d["id"] == dept["department_id"])
            item = max(k["by_item"], key=lambda i: i["parts"])["item"] if "by_item" in k else "XH-GA-010"
            print(f"  kpis: {k['overall']['applications']:,} applications, {k['overall']['parts']:,} parts, "
                  f"{len(k['by_department'])} departments, {len(k.get('by_item', []))} items", flush=True)
            for name, params in (("kpis, all", {}), (f"kpis, department {code}", {"department": code}),
                                 (f"kpis, item {item}", {"item": item}), ("kpis, last 30 days", {"since": month})):
                times = []
                for _ in range(args.kpi_runs):
                    t = time.perf_counter()
                    r = c.get(base + "/services/kpis", params=params, headers=analyst)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                out[name] = {"median_ms": round(statistics.median(times) * 1000, 1),
                             "max_ms": round(max(times) * 1000, 1), "applications": r.json()["overall"]["applications"]}
                print(f"  {name}: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
                      f"({r.json()['overall']['applications']:,} applications)", flush=True)
    finally:
        tear_down(server, kind, bus_url, data, db_url, drop, keep=args.keep_data)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="sqlite", help="sqlite, postgresql or both (comma-separated)")
    ap.add_argument("--past", type=int, default=100_000, help="past applications bulk-loaded before serving")
    ap.add_argument("--runs", type=int, default=200, help="submissions measured (health: three times as many)")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--kpi-runs", type=int, default=5)
    ap.add_argument("--postgres", default=PG_ADMIN)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--profile", help="a folder: py-spy samples the server during the submissions")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--catalogue-only", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args()
    catalogue_figures()
    if not a.catalogue_only:
        if a.profile:
            Path(a.profile).mkdir(parents=True, exist_ok=True)
        results = [run(k, a) for k in a.engines.split(",")]
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
