"""The IoT ingest's own cost: the bridge's groups of messages handled by ``iot-ingest``'s handler in this
process, no broker, no bus, no other consumer — datapoints per CPU-second of this thread, the figure the
end-to-end bench (bench/iot.py) cannot show apart from the broker, the bus and the machine's load.

    PYTHONPATH=src .venv/bin/python bench/iot_core.py [--devices 3000] [--messages 30000] [--engine sqlite|postgresql]
        [--profile] [--keep]

The same data as bench/iot.py (``simulator.plan_devices``, ``simulator.Fleet``, secrets derived from the
seed) in the small demo city; groups of 250 messages (the bridge's largest), 4 groups a transaction (the
consumer's batch), committed as the consumer commits. With ``--profile``, cProfile's top functions by their
own time and by their cumulative time. Not a test: figures to report."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from _server import new_database  # noqa: E402

from iot import fleet_messages, plan, prepare_city, say  # noqa: E402

PG_ADMIN = os.environ.get("CITYBASE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=3000)
    ap.add_argument("--messages", type=int, default=30000)
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    import json

    from sqlalchemy import text

    from citybase.bus import Context
    from citybase.iot import workers
    from citybase.iot.bridge import ingest_event
    from citybase.kernel import outbox
    from citybase.kernel.domain import load_models
    from citybase.storage.db import make_engine, make_sessionmaker

    tmp = Path(tempfile.mkdtemp(prefix="iotcore-"))
    drop = None
    if a.engine == "sqlite":
        db_url = f"sqlite:///{tmp / 'city.sqlite3'}"
    else:
        db_url, drop = new_database(PG_ADMIN, "bench_iotcore")
    os.environ["CITYBASE_DATA_DIR"] = str(tmp)
    os.environ["CITYBASE_DATABASE_URL"] = db_url
    try:
        planned = plan(a.devices, a.seed)
        say(f"{a.engine}: the small city and {len(planned):,} devices")
        prepare_city(db_url, tmp, planned, a.seed)
        end = datetime.now(UTC) - timedelta(minutes=1)
        msgs = fleet_messages(planned, a.seed, a.messages, end)
        datapoints = sum(len(m["v"]) for _, m in msgs)
        at = end.isoformat()
        groups = [ingest_event([(f"citybase/iot/{d}/up", json.dumps(m, separators=(",", ":")).encode(), at)
                                for d, m in msgs[i:i + 250]]) for i in range(0, len(msgs), 250)]
        say(f"{len(msgs):,} messages, {datapoints:,} datapoints in {len(groups)} groups")
        load_models()
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)

        class D:  # what the consumer hands the handler
            def __init__(self, event):  # noqa: ANN001
                self.event, self.attempt = event, 1

        prof = cProfile.Profile() if a.profile else None
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        if prof:
            prof.enable()
        for i in range(0, len(groups), 4):
            with sessions() as s:
                outbox.bind_context(s, Context(user_id=None))
                workers.ingest(s, [D(e) for e in groups[i:i + 4]], None)
                s.commit()
        if prof:
            prof.disable()
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        with engine.connect() as c:
            stored = c.execute(text("SELECT count(*) FROM iot_readings")).scalar()
            history = c.execute(text("SELECT count(*) FROM twin_history")).scalar()
            dead = c.execute(text("SELECT count(*) FROM iot_dead_letters")).scalar()
        engine.dispose()
        print(f"\n{a.engine}: {stored:,} of {datapoints:,} datapoints stored ({history:,} history rows, {dead} dead "
              f"letters) in {wall:.2f} s wall, {cpu:.2f} s CPU of this thread")
        print(f"  {datapoints / cpu:,.0f} datapoints per CPU-second, {datapoints / wall:,.0f} per second "
              f"(load average {os.getloadavg()[0]:.1f})")
        if prof:
            prof.dump_stats(str(Path(tempfile.gettempdir()) / "iot_core.prof"))
            st = pstats.Stats(prof)
            st.sort_stats("tottime").print_stats(25)
            st.sort_stats("cumulative").print_stats(40)
    finally:
        if drop and not a.keep:
            drop()
        if not a.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
