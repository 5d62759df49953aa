"""Wall time and peak memory of `citybase generate --size district` into SQLite and PostgreSQL.

usage: python bench/generate.py [--size district] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
The PostgreSQL database `citybase_bench` is recreated; pass --pg '' to skip PostgreSQL."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

OUT = Path(__file__).resolve().parent / "out"


def run(env_extra: dict[str, str], size: str) -> tuple[float, float]:
    env = {**os.environ, **env_extra}
    cli = str(Path(sys.executable).with_name("citybase"))
    start = time.perf_counter()
    proc = subprocess.Popen([cli, "generate", "--size", size], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"generate failed with {env_extra}")
    return wall, usage.ru_maxrss / 1024 / 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="district")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    rows = []
    data = OUT / f"gen-{args.size}"
    shutil.rmtree(data, ignore_errors=True)
    wall, mem = run({"CITYBASE_DATA_DIR": str(data), "CITYBASE_DATABASE_URL": ""}, args.size)
    rows.append(("SQLite", wall, mem))
    if args.pg:
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("DROP DATABASE IF EXISTS citybase_bench WITH (FORCE)"))
            c.execute(text("CREATE DATABASE citybase_bench"))
        url = args.pg.rsplit("/", 1)[0] + "/citybase_bench"
        wall, mem = run({"CITYBASE_DATABASE_URL": url}, args.size)
        rows.append(("PostgreSQL+PostGIS", wall, mem))
    print(f"\ncitybase generate --size {args.size}   (aim: < 180 s, < 4 GiB)")
    print(f"{'engine':<20}{'wall s':>10}{'peak GiB':>10}")
    for name, wall, mem in rows:
        print(f"{name:<20}{wall:>10.1f}{mem:>10.2f}")


if __name__ == "__main__":
    main()
