"""一网通办 figures.

1. The demo catalogue's own 材料减免率 and prefill share: of every item's materials, how many a licence, a base
   registry or another item's result proves (never asked for), item by item and over the 一件事 bundles (where
   materials are also deduplicated); "now" counts only the licences the base registries prove until the licence
   library is wired in (ID card, household register, business licence), "library" every licence type.
2. Submitting a 开办企业 bundle as a firm (start with prefill, consent, attach, submit: 3 requests, fan-out to 5
   departments) with ``--past`` applications already in the database, sequentially through the app in process,
   beside the same app's ``GET /api/v1/health``: requests/s and p50/p99 of a whole submission.

    PYTHONPATH=src python bench/services.py --past 10000 --runs 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from citybase.services import forms

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


def submit_figures(past: int, runs: int) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from citybase.api.app import create_app
    from citybase.bus.memory import InProcessBus
    from citybase.demo.accounts import create_demo_users
    from citybase.demo.generator import generate
    from citybase.demo.services import load_services_demo
    from citybase.demo.services_simulation import ServicesSimulation
    from citybase.storage.db import make_engine
    from citybase.storage.migrate import upgrade

    tmp = Path(tempfile.mkdtemp())
    engine = make_engine(f"sqlite:///{tmp / 'bench.sqlite3'}")
    upgrade(engine)
    generate(engine, size="small", seed=7)
    tokens = create_demo_users(engine, tmp)
    load_services_demo(engine, tmp)
    t0 = time.perf_counter()
    sim = ServicesSimulation(engine, rate=0, seed=1)
    done = 0
    while done < past:
        sim._guard(sim._apply)  # noqa: SLF001 - the simulation's own filing path, as fast as it goes
        done += 1
    with Session(engine) as s:
        from sqlalchemy import text

        stored = s.scalar(text("SELECT count(*) FROM services_applications"))
    print(f"{stored} past applications filed in {time.perf_counter() - t0:.0f} s")
    client = TestClient(create_app(engine=engine, bus=InProcessBus()))
    h = {"Authorization": f"Bearer {tokens['firm']}"}
    body = {"form": {"applicant_name": "张三", "id_number": "11010519491231002X", "registered_capital": 100,
                     "business_scope": "软件开发；信息技术咨询服务", "employees": 5, "bank_account": "6222020200112233445"},
            "consent": ["id_card", "business_licence"],
            "provided": ["applicant:公司章程", "applicant:住所使用证明", "licence:id_card"]}

    def once() -> float:
        t = time.perf_counter()
        app = client.post("/api/v1/services/applications", json={"bundle": "business-start"}, headers=h).json()
        form = {k: v for k, v in body["form"].items() if k not in app["form"]}  # never over the registry's
        r = client.patch(f"/api/v1/services/applications/{app['id']}", json={**body, "form": form}, headers=h)
        assert r.status_code == 200, r.text
        r = client.post(f"/api/v1/services/applications/{app['id']}/submit", headers=h)
        assert r.status_code == 200 and len(r.json()["parts"]) == 5, r.text
        return time.perf_counter() - t

    def health() -> float:
        t = time.perf_counter()
        client.get("/api/v1/health")
        return time.perf_counter() - t

    for name, fn in (("health", health), ("开办企业 submission (3 requests)", once)):
        fn()
        times = sorted(fn() for _ in range(runs))
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{name}: {1 / statistics.mean(times):.1f}/s, p50 {statistics.median(times) * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--past", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--catalogue-only", action="store_true")
    a = ap.parse_args()
    catalogue_figures()
    if not a.catalogue_only:
        submit_figures(a.past, a.runs)
