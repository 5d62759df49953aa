"""Timers with one leader across processes: every serving or worker process may start the same timer, and
only the one holding its lease (``citybase.kernel.leases``) runs it.

Each tick the timer takes or renews its lease (committed at once) and runs its function only if it holds
it. A leader that dies stops renewing; when the lease expires, the next tick of another process takes it
over. ``ttl`` must exceed ``interval`` plus the longest run, or a slow leader can be overtaken mid-run."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import Engine

from citybase.kernel import leases
from citybase.storage.db import make_sessionmaker

log = logging.getLogger("citybase.kernel.timers")


def holder_id() -> str:
    """A name for this timer instance that no other process or thread uses: host, pid and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Timer(threading.Thread):
    """Runs ``fn()`` every ``interval`` seconds while this process holds the lease ``name``; ``runs``
    counts the runs, ``leading`` says whether it held the lease at its last tick."""

    def __init__(self, name: str, fn: Callable[[], object], *, engine: Engine, interval: float,
                 ttl: float | None = None, run_at_start: bool = False, holder: str | None = None) -> None:
        super().__init__(name=f"citybase-timer-{name}", daemon=True)
        if interval <= 0:
            raise ValueError("a timer's interval must be positive")
        self.lease, self.fn, self.interval = name, fn, interval
        self.ttl = ttl if ttl is not None else 3 * interval
        if self.ttl <= interval:
            raise ValueError(f"the lease of timer {name!r} ({self.ttl:g} s) must outlast its interval ({interval:g} s)")
        self.run_at_start = run_at_start
        self.holder = holder or holder_id()
        self.sessions = make_sessionmaker(engine)
        self.stop_event = threading.Event()
        self.runs = 0
        self.leading = False

    def hold(self) -> bool:
        """Take or renew the lease (committed); True when this timer leads now."""
        with self.sessions() as session:
            held = leases.acquire(session=session, name=self.lease, holder=self.holder, ttl=self.ttl)
            session.commit()
        if held != self.leading:
            log.info("timer %s: %s the lease (%s)", self.lease, "took" if held else "lost", self.holder)
        self.leading = held
        return held

    def tick(self) -> bool:
        """One tick: run the function if this timer holds the lease. True when it ran."""
        if not self.hold():
            return False
        self.fn()
        self.runs += 1
        return True

    def run(self) -> None:
        if not self.run_at_start and self.stop_event.wait(self.interval):
            return
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a failed run (or a database away) must not end the timer
                log.exception("timer %s failed", self.lease)
            self.stop_event.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ticking, wait for a run in progress (up to ``timeout`` s), and give the lease up so another
        process takes over at its next tick instead of after the expiry."""
        self.stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        try:
            with self.sessions() as session:
                leases.release(session=session, name=self.lease, holder=self.holder)
                session.commit()
        except Exception:  # noqa: BLE001 - the lease then simply expires
            log.warning("timer %s: could not release its lease; it expires in %g s", self.lease, self.ttl)
        self.leading = False
