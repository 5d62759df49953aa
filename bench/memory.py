"""The server's resident memory under a steady mixed load: a real `citybase serve` process on the small demo
city, about 20 requests/s from a client in this process (12345 hotline and Open311 intakes, incident lists
through the API and Open311, health), its VmRSS sampled every 10 s. Prints the series and the slope after
warm-up (least squares over the last 80 % of the samples, MB per minute). Aim: flat after warm-up.

    python bench/memory.py [--engines sqlite,postgresql] [--minutes 10] [--rate 20]

sqlite: the embedded default (SQLite file, memory:// bus). postgresql: a new database on --postgres and
NATS JetStream on --nats with its own ``?deployment=`` (streams deleted afterwards)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import PG_ADMIN, Server, new_database, rss_mb, tear_down  # noqa: E402

from citybase.ops.catalogue.defaults import CATEGORIES  # noqa: E402
from citybase.ops.classification.corpus import generate_corpus  # noqa: E402

# (weight per 20 requests, kind): about 4 intakes a second, the rest reads
MIX = [(3, "hotline"), (1, "open311_post"), (6, "incidents"), (4, "open311_list"), (6, "health")]


def slope(series: list[tuple[float, float]]) -> float:
    """Least-squares slope (MB per minute) of (seconds, MB) points."""
    n = len(series)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in series) / n
    my = sum(m for _, m in series) / n
    sxx = sum((t - mx) ** 2 for t, _ in series)
    return sum((t - mx) * (m - my) for t, m in series) / sxx * 60 if sxx else float("nan")


async def drive(server: Server, tokens: dict[str, str], addresses: list[str], seconds: float, rate: float,
                sample_every: float) -> tuple[list[tuple[float, float]], Counter]:
    texts = generate_corpus(10, seed=9, styles="heldout")
    codes = {c.code for c in CATEGORIES}
    kinds = [k for w, k in MIX for _ in range(w)]
    rnd = random.Random(7)
    statuses: Counter = Counter()
    series: list[tuple[float, float]] = []
    disp = {"Authorization": f"Bearer {tokens['dispatcher']}"}

    def request(kind: str) -> tuple[str, str, dict]:
        desc, code = rnd.choice(texts)
        addr = rnd.choice(addresses)
        if kind == "hotline":
            body = {"caller_phone": f"139{rnd.randrange(10**8):08d}", "text": desc, "address": addr}
            return "POST", "/api/v1/ops/hotline", {"json": body, "headers": {**disp, "Idempotency-Key": uuid.uuid4().hex}}
        if kind == "open311_post":
            form = {"api_key": tokens["citizen"], "service_code": code if code in codes else "01001",
                    "description": desc, "address_string": addr}
            return "POST", "/open311/v2/requests.json", {"data": form}
        if kind == "incidents":
            return "GET", f"/api/v1/ops/incidents?page_size=20&page={rnd.randint(1, 5)}", {"headers": disp}
        if kind == "open311_list":
            return "GET", "/open311/v2/requests.json?page_size=20", {}
        return "GET", "/api/v1/health", {}

    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        sem = asyncio.Semaphore(32)

        async def one(kind: str) -> None:
            method, path, kw = request(kind)
            try:
                r = await client.request(method, path, **kw)
                statuses[f"{kind} {r.status_code}"] += 1
            except httpx.HTTPError as exc:
                statuses[f"{kind} {type(exc).__name__}"] += 1
            finally:
                sem.release()

        start = time.monotonic()
        next_sample = start
        i = 0
        tasks = set()
        while (now := time.monotonic()) < start + seconds:
            if now >= next_sample:
                series.append((now - start, rss_mb(server.proc.pid)))
                print(f"  t={now - start:6.0f} s  RSS {series[-1][1]:7.1f} MB  (anonymous "
                      f"{rss_mb(server.proc.pid, 'RssAnon'):7.1f} MB)", flush=True)
                next_sample += sample_every
            due = start + i / rate
            if due > now:
                await asyncio.sleep(min(due - now, max(next_sample - now, 0)))
                continue
            await sem.acquire()  # at most 32 in flight: a slow server lowers the rate instead of piling up
            t = asyncio.create_task(one(kinds[i % len(kinds)]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        await asyncio.gather(*tasks)
        series.append((time.monotonic() - start, rss_mb(server.proc.pid)))
        print(f"  sent {i} requests in {time.monotonic() - start:.0f} s ({i / (time.monotonic() - start):.1f}/s)")
    return series, statuses


def run(kind: str, args: argparse.Namespace) -> dict:
    data = Path(tempfile.mkdtemp(prefix=f"cb-mem-{kind}-"))
    drop = None
    if kind == "sqlite":
        db_url, bus_url = f"sqlite:///{data / 'citybase.sqlite3'}", args.sqlite_bus
    else:
        db_url, drop = new_database(args.postgres, "bench_memory")
        bus_url = f"{args.nats}?deployment=benchmem{uuid.uuid4().hex[:6]}"
    server = Server(data, db_url, bus_url)
    try:
        print(f"[{kind}] setting up the small city in {data} …", flush=True)
        tokens = server.setup()
        eng = create_engine(db_url)
        with eng.connect() as c:
            addresses = [a.replace("上海市徐汇区", "") for (a,) in c.execute(text("SELECT address FROM buildings ORDER BY id LIMIT 5000"))]
        eng.dispose()
        server.start()
        print(f"[{kind}] serving on {server.base} (pid {server.proc.pid}); {args.rate:g} requests/s for {args.minutes:g} min",
              flush=True)
        series, statuses = asyncio.run(drive(server, tokens, addresses, args.minutes * 60, args.rate, args.every))
    finally:
        tear_down(server, kind, bus_url, data, db_url, drop)
    tail = series[len(series) // 5:]
    return {"engine": kind, "bus": bus_url.split("?deployment")[0], "minutes": args.minutes, "rate": args.rate,
            "series": [(round(t), round(m, 1)) for t, m in series], "start_mb": series[0][1],
            "after_warmup_mb": tail[0][1], "end_mb": series[-1][1], "max_mb": max(m for _, m in series),
            "slope_mb_per_min": slope(tail), "statuses": dict(sorted(statuses.items()))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=20, help="requests per second")
    ap.add_argument("--every", type=float, default=10, help="seconds between RSS samples")
    ap.add_argument("--sqlite-bus", default="memory://", help="bus of the sqlite run (e.g. memory://?max_msgs=100)")
    ap.add_argument("--postgres", default=PG_ADMIN)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    results = [run(k, args) for k in args.engines.split(",")]
    for r in results:
        print(f"\n[{r['engine']}] RSS every {args.every:g} s (MB): " + " ".join(f"{m:.0f}" for _, m in r["series"]))
        print(f"[{r['engine']}] start {r['start_mb']:.1f} MB, after warm-up {r['after_warmup_mb']:.1f}, end "
              f"{r['end_mb']:.1f}, max {r['max_mb']:.1f}; slope over the last 80 %: {r['slope_mb_per_min']:+.2f} MB/min")
        print(f"[{r['engine']}] answers: {r['statuses']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
