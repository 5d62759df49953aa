"""Licence verification: signatures verified per second offline and online, printed side by side.

1. offline, the library: ``citybase.licences.signing.verify_token`` (Ed25519 with OpenSSL through
   ``cryptography``, then the JSON of the content) over the demo city's own tokens, one thread: what
   ``citybase licences verify`` and any holder of the published keys do without a server;
2. offline, the browser: ``crypto.subtle.verify`` (Ed25519, WebCrypto) in headless Chromium over the same
   tokens, as the verifier page does (skipped without /usr/bin/chromium);
3. online: ``POST /api/v1/licences/verify`` (signature, then revocation and expiry in the register) against a
   real `citybase serve` with the small demo city, ``--clients`` concurrent clients for ``--seconds``
   (httpx asyncio, one connection per client), beside the same server's ``GET /api/v1/health``.

usage: python bench/licences.py [--tokens 2000] [--seconds 15] [--clients 8] [--url postgresql+psycopg://…]"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import CITYBASE, free_port, new_database  # noqa: E402

from citybase.licences import signing  # noqa: E402


def pct(xs: list[float], p: int) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000 if xs else float("nan")


def offline_library(tokens: list[str], keys: dict, rounds: int) -> float:
    t = time.perf_counter()
    n = 0
    for _ in range(rounds):
        for tok in tokens:
            assert signing.verify_token(tok, keys).ok
            n += 1
    return n / (time.perf_counter() - t)


def offline_browser(tokens: list[str], keys_json: list[dict]) -> float | None:
    if not Path("/usr/bin/chromium").exists():
        return None
    # WebCrypto needs a secure context: a page of a 127.0.0.1 server
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="cb-lic-web-"))
    (tmp / "index.html").write_text("<!doctype html><title>bench</title>")
    port = free_port()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a) -> None:  # noqa: ANN002
            pass

    handler = lambda *a, **kw: Quiet(*a, directory=str(tmp), **kw)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
            page = b.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            rate = page.evaluate("""async ([tokens, keys]) => {
              const un = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
              const pubs = {};
              for (const k of keys) pubs[k.kid] = await crypto.subtle.importKey("raw", un(k.x), {name: "Ed25519"}, false, ["verify"]);
              const items = tokens.map((t) => { const [f, kid, p, s] = t.split("."); return [pubs[kid], un(s), new TextEncoder().encode(`${f}.${kid}.${p}`), p]; });
              const t0 = performance.now(); let n = 0;
              for (let r = 0; r < 3; r++) for (const [k, s, m, p] of items) {
                if (!(await crypto.subtle.verify({name: "Ed25519"}, k, s, m))) throw new Error("bad");
                JSON.parse(new TextDecoder().decode(un(p))); n++;
              }
              return n / ((performance.now() - t0) / 1000);
            }""", [tokens, keys_json])
            b.close()
            return rate
    finally:
        srv.shutdown()


async def drive(base: str, make, clients: int, seconds: float) -> tuple[float, list[float], int]:
    lat: list[float] = []
    bad = 0
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal bad
        rnd = random.Random(k)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=1)) as c:
            while time.perf_counter() < stop:
                method, path, body = make(rnd)
                t = time.perf_counter()
                r = await c.request(method, path, json=body)
                lat.append(time.perf_counter() - t)
                if r.status_code != 200 or (body is not None and not r.json().get("ok")):
                    bad += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return len(lat) / (time.perf_counter() - t0), lat, bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--url", default=None, help="a PostgreSQL server's admin URL (default: SQLite)")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cb-lic-"))
    drop = None
    if args.url:
        db_url, drop = new_database(args.url, "cb_lic")
    else:
        db_url = f"sqlite:///{data / 'citybase.sqlite3'}"
    port = free_port()
    env = {**os.environ, "CITYBASE_DATA_DIR": str(data), "CITYBASE_DATABASE_URL": db_url, "CITYBASE_PORT": str(port),
           "CITYBASE_BUS_URL": "memory://", "CITYBASE_LOG_LEVEL": "WARNING"}
    env.pop(signing.ENV_KEY, None)
    t = time.perf_counter()
    subprocess.run([CITYBASE, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([CITYBASE, "generate", "--size", "small"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"small demo city with its licences generated in {time.perf_counter() - t:.1f} s ({db_url.split(':')[0]})")
    engine = create_engine(db_url)
    with engine.connect() as c:
        total = c.execute(text("SELECT count(*) FROM licences")).scalar()
        # licences valid today, so that every online answer is ok (the demo also holds expired ones)
        tokens = [r[0] for r in c.execute(text(
            "SELECT token FROM licences WHERE status = 'valid' AND (expires_on IS NULL OR expires_on >= :today) "
            "ORDER BY id LIMIT :n"), {"n": args.tokens, "today": date.today() + timedelta(days=1)})]
    engine.dispose()
    keys = dict(signing.load_keys(data).public)
    sizes = sorted(len(x) for x in tokens)
    print(f"{total:,} licences; tokens {sizes[0]}–{sizes[-1]} characters (median {sizes[len(sizes) // 2]})")

    lib = offline_library(tokens, keys, rounds=3)
    browser = offline_browser(tokens, [k.as_json() for k in keys.values()])

    proc = subprocess.Popen([CITYBASE, "serve"], env=env, stdout=open(data / "server.log", "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"server did not start, see {data}/server.log")
            time.sleep(0.3)
        online, lat, bad = asyncio.run(drive(base, lambda r: ("POST", "/api/v1/licences/verify",
                                                               {"token": r.choice(tokens)}), args.clients, args.seconds))
        health, hlat, _ = asyncio.run(drive(base, lambda r: ("GET", "/api/v1/health", None), args.clients, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if drop:
            drop()
    print()
    print(f"| licence verification ({os.cpu_count()} cores, shared) | verified/s | p50 | p99 |")
    print("|---|---|---|---|")
    print(f"| offline, library (Ed25519 via cryptography, 1 thread) | **{lib:,.0f}** | {1000 / lib:.3f} ms | |")
    if browser is not None:
        print(f"| offline, browser (WebCrypto Ed25519, headless Chromium) | **{browser:,.0f}** | {1000 / browser:.3f} ms | |")
    print(f"| online, POST /api/v1/licences/verify, {args.clients} clients | **{online:,.0f}** "
          f"| {pct(lat, 50):.1f} ms | {pct(lat, 99):.1f} ms |")
    print(f"| beside it: GET /api/v1/health, {args.clients} clients | {health:,.0f} | {pct(hlat, 50):.1f} ms "
          f"| {pct(hlat, 99):.1f} ms |")
    if bad:
        print(f"{bad} online verifications did not answer ok")


if __name__ == "__main__":
    main()
