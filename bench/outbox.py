"""Outbox relay throughput and commit-to-publish lag: N events committed in small transactions, relayed to
the in-process bus or NATS, on SQLite and PostgreSQL. Prints events/s and lag p50/p99.

    python bench/outbox.py [--events 20000] [--postgres URL] [--nats URL]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from citybase.bus import connect
from citybase.kernel import outbox
from citybase.kernel.outbox import Relay
from citybase.storage.db import make_engine, make_sessionmaker
from citybase.storage.migrate import upgrade


def run(engine, bus, events: int, per_tx: int = 3) -> tuple[float, float, float]:
    """Commit ``events`` in transactions of ``per_tx`` from 4 writer threads while a relay thread publishes."""
    sessions = make_sessionmaker(engine)
    relay = Relay(engine, bus, poll=0.5)
    relay.start()
    started = time.perf_counter()

    def writer(n: int) -> None:
        for i in range(0, n, per_tx):
            with sessions() as s:
                for k in range(per_tx):
                    outbox.queue(s, "citybase.bench.step", {"i": i + k})
                s.commit()

    threads = [threading.Thread(target=writer, args=(events // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while outbox.depth(engine):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    relay.stop()
    lags = sorted(relay.lags)
    return relay.published / elapsed, lags[len(lags) // 2], lags[int(len(lags) * 0.99)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    for kind in ("sqlite", "postgresql"):
        for bus_kind in ("memory", "nats"):
            if kind == "sqlite":
                engine, drop = make_engine(f"sqlite:///{tmp / uuid.uuid4().hex}.sqlite3"), None
            else:
                name = f"bench_outbox_{uuid.uuid4().hex[:8]}"
                admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
                with admin.connect() as c:
                    c.execute(text(f"CREATE DATABASE {name}"))
                engine = make_engine(args.postgres.rsplit("/", 1)[0] + f"/{name}")
                drop = (admin, name)
            upgrade(engine)
            url = "memory://?max_msgs=1000" if bus_kind == "memory" else f"{args.nats}?deployment=bench{uuid.uuid4().hex[:6]}"
            bus = connect(url)
            rate, p50, p99 = run(engine, bus, args.events)
            print(f"{kind:10} {bus_kind:6}  {rate:8,.0f} events/s  lag p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:7.1f} ms")
            if bus_kind == "nats":
                bus.delete_streams()
            bus.close()
            engine.dispose()
            if drop:
                with drop[0].connect() as c:
                    c.execute(text(f"DROP DATABASE IF EXISTS {drop[1]} WITH (FORCE)"))


if __name__ == "__main__":
    main()
