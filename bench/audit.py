"""Audit log: entries verified per second, and the cost of a checkpoint on a long log.

usage: python bench/audit.py [--url DATABASE_URL] [--entries 200000]
Loads a valid chain of N entries in bulk, then times `citybase audit verify` (the chain walk plus
every checkpoint), the first checkpoint (walks the whole chain once) and a checkpoint after 100 new
entries (walks only those)."""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.security import audit
from citybase.storage.db import bulk_insert, make_engine
from citybase.storage.migrate import upgrade

COLUMNS = ("seq", "at", "actor", "roles", "action", "subject_type", "subject_ids", "fields", "request_id",
           "prev_hash", "hash")


def rows(n: int):
    prev, t0 = audit.GENESIS, utcnow()
    for seq in range(1, n + 1):
        at = t0 + timedelta(microseconds=seq)
        vals = (f"user:{seq % 50}:u", "data_officer", "read.person.unmasked", "person", str(seq), "id_number",
                f"r{seq}")
        h = audit._digest(prev, seq, at, *vals)
        yield (seq, at, *vals, prev, h)
        prev = h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=None)
    ap.add_argument("--entries", type=int, default=200_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cb-audit-"))
    engine = make_engine(args.url or f"sqlite:///{tmp / 'audit.sqlite3'}")
    upgrade(engine)
    bulk_insert(engine, "audit_log", COLUMNS, rows(args.entries))
    if engine.dialect.name == "postgresql":  # bulk_insert bypasses the sequence
        with engine.begin() as c:
            c.exec_driver_sql("SELECT setval(pg_get_serial_sequence('audit_log', 'seq'), max(seq)) FROM audit_log")

    def timed(fn):
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start

    cp, first = timed(lambda: audit.checkpoint(engine, data_dir=tmp))
    for i in range(100):
        audit.record(engine, actor="bench", roles="r", action="a", subject_type="t", subject_ids=[i], fields=[],
                     request_id="b")
    _, incremental = timed(lambda: audit.checkpoint(engine, data_dir=tmp))
    with Session(engine) as s:
        v, walk = timed(lambda: audit.verify(s, data_dir=tmp))
    assert v.ok and cp is not None, v.problems
    print(f"{engine.dialect.name}: {v.checked:,} entries, {v.checkpoints} checkpoints")
    print(f"  verify               {walk:7.2f} s  ({v.checked / walk:,.0f} entries/s)")
    print(f"  first checkpoint     {first:7.2f} s  (walks the whole chain once)")
    print(f"  checkpoint +100      {incremental * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
