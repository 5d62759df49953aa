"""SQLite's write-ahead log is copied back into the database from a thread of its own, never inside a commit."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import text

from citybase.storage.db import CHECKPOINTERS, Checkpointer, make_engine


def write_mb(engine, mb: int, start: int = 0) -> None:  # noqa: ANN001
    with engine.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, body BLOB)"))
        c.execute(text("INSERT INTO blobs (id, body) VALUES (:i, randomblob(65536))"),
                  [{"i": start + i} for i in range(mb * 16)])


def test_a_commit_leaves_the_log_to_the_checkpointer_which_copies_it_into_the_database(tmp_path: Path) -> None:
    db = tmp_path / "city.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    try:  # without the thread: 12 MB committed stay in the log, the commit copied nothing back
        CHECKPOINTERS[engine].stop()  # stopped before the first connection: it never starts
        write_mb(engine, 12)
        assert os.path.getsize(f"{db}-wal") > 12 * 2**20
        assert os.path.getsize(db) < 2**20
    finally:
        engine.dispose()

    db = tmp_path / "other.sqlite3"
    engine = make_engine(f"sqlite:///{db}")  # with it: the log goes into the file soon after the commit
    try:
        cp = CHECKPOINTERS[engine]
        write_mb(engine, 12)
        deadline = time.monotonic() + 20
        while (os.path.getsize(db) < 12 * 2**20 or not cp.runs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.path.getsize(db) > 12 * 2**20 and cp.runs >= 1
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM blobs")).scalar() == 12 * 16
        runs = cp.runs
        time.sleep(3 * Checkpointer.INTERVAL)
        assert cp.runs == runs  # nothing written since: no checkpoint again
    finally:
        engine.dispose()
    cp._thread.join(5)
    assert not cp._thread.is_alive()  # ended with the engine


def test_the_fallback_bounds_the_log_when_no_thread_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "city.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    try:
        cp = CHECKPOINTERS[engine]
        cp.stop()  # stopped before the first connection: it never starts
        for k in range(5):  # 80 MB in 16 MB commits: past the fallback's 64 MB a commit checkpoints after all
            write_mb(engine, 16, start=k * 1000)
        assert os.path.getsize(db) > 40 * 2**20
        assert os.path.getsize(f"{db}-wal") <= Checkpointer.KEEP_BYTES + 17 * 2**20
    finally:
        engine.dispose()
