"""Leases and leased timers: one holder per name across processes, taken over when the holder dies."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from citybase.core.timeutil import utcnow
from citybase.kernel import leases
from citybase.kernel.timers import Timer
from citybase.storage.db import make_engine, make_sessionmaker
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES

WAIT = 120.0  # seconds the test waits for a process to show up in the log before giving up


@pytest.fixture
def db(empty_db):
    upgrade(empty_db.engine)
    return empty_db


def _cas(db, fn, **kw):
    sessions = make_sessionmaker(db.engine)
    with sessions() as s:
        done = fn(session=s, **kw)
        s.commit()
    return done


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_lease_has_one_holder_until_it_expires_or_is_released(db):
    t0 = utcnow()
    assert _cas(db, leases.acquire, name="t", holder="a", ttl=10, now=t0) is True
    assert _cas(db, leases.acquire, name="t", holder="b", ttl=10, now=t0 + timedelta(seconds=5)) is False
    assert _cas(db, leases.renew, name="t", holder="a", ttl=10, now=t0 + timedelta(seconds=5)) is True
    assert _cas(db, leases.acquire, name="t", holder="b", ttl=10, now=t0 + timedelta(seconds=14)) is False
    # a's renewal ran to t0+15: after that, b takes over and a's renewals fail
    assert _cas(db, leases.acquire, name="t", holder="b", ttl=10, now=t0 + timedelta(seconds=16)) is True
    assert _cas(db, leases.renew, name="t", holder="a", ttl=10, now=t0 + timedelta(seconds=16)) is False
    assert _cas(db, leases.release, name="t", holder="a") is False
    assert _cas(db, leases.release, name="t", holder="b") is True
    assert _cas(db, leases.acquire, name="t", holder="a", ttl=10, now=t0 + timedelta(seconds=17)) is True
    assert _cas(db, leases.acquire, name="other", holder="b", ttl=10, now=t0 + timedelta(seconds=17)) is True


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_a_stopped_timer_hands_its_lease_over_at_once(db):
    ran: list[str] = []
    first = Timer("hand-over", lambda: ran.append("first"), engine=db.engine, interval=0.05, ttl=600)
    second = Timer("hand-over", lambda: ran.append("second"), engine=db.engine, interval=0.05, ttl=600)
    assert first.tick() is True and second.tick() is False
    first.stop()
    assert second.tick() is True and first.runs == 1 and second.runs == 1
    assert ran == ["first", "second"]


def _timer_process(url: str, log: str, ttl: float) -> None:
    """A process that runs the timer ``demo`` every 50 ms while it leads, logging each run's start and end."""
    engine = make_engine(url)

    def work() -> None:
        with open(log, "a") as f:
            f.write(f"start {os.getpid()}\n")
        time.sleep(0.02)  # a run takes a while, so overlapping runs of two processes would interleave
        with open(log, "a") as f:
            f.write(f"end {os.getpid()}\n")

    timer = Timer("demo", work, engine=engine, interval=0.05, ttl=ttl, run_at_start=True)
    timer.start()
    timer.join()


def _runs(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(kind, int(pid)) for kind, pid in (line.split() for line in log.read_text().splitlines() if line)]


def _wait_for(cond, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_only_one_process_runs_a_timer_and_another_takes_over_when_it_dies(db, tmp_path):
    import multiprocessing as mp

    log = tmp_path / "runs.log"
    ctx = mp.get_context("spawn")
    procs = {}
    for _ in range(2):
        p = ctx.Process(target=_timer_process, args=(db.url, str(log), 4.0), daemon=True)
        p.start()
        procs[p.pid] = p
    try:
        _wait_for(lambda: sum(k == "end" for k, _ in _runs(log)) >= 20, "the leader's first 20 runs")
        before = _runs(log)
        leaders = {pid for _, pid in before}
        assert len(leaders) == 1  # the other process never ran while the leader held the lease
        (leader,) = leaders
        procs[leader].kill()
        procs[leader].join(timeout=30)
        (other,) = set(procs) - {leader}
        _wait_for(lambda: any(pid == other for _, pid in _runs(log)), "the other process to take over")
        _wait_for(lambda: sum(pid == other and k == "end" for k, pid in _runs(log)) >= 5, "its first 5 runs")
    finally:
        for p in procs.values():
            p.kill()
            p.join(timeout=30)

    runs = _runs(log)
    # Runs never overlap: every start is followed by the end of the same process (the killed leader may
    # have died in the middle of one run), and once the other process runs, the leader never runs again.
    i, seen_other = 0, False
    while i < len(runs):
        kind, pid = runs[i]
        assert kind == "start", runs[i - 2:i + 2]
        seen_other = seen_other or pid == other
        assert not (seen_other and pid == leader)
        if i + 1 < len(runs) and runs[i + 1] == ("end", pid):
            i += 2
        elif i + 1 == len(runs):
            assert pid == other  # the last run, cut short when the test killed both processes at its end
            i += 1
        else:
            assert pid == leader and runs[i + 1][1] == other  # the run the kill cut short
            i += 1
    assert seen_other
