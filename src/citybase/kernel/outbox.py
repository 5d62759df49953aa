"""The transactional outbox: events are rows written in the transaction of the change they describe, and a
relay publishes them to the bus after the commit.

One way to publish: every publisher calls :func:`queue` with its session. The event's context comes from the
session (:func:`bind_context`, set where the session is made: the request's id and caller in
``security.deps.get_session``, the delivery's child context in a consumer). Nothing is published for a
transaction that rolls back (its rows vanish with it); nothing committed is lost when the process dies or the
bus is away (the rows wait for the relay). A relay publishes in ``seq`` order, marks the rows, and prunes
published rows after a retention; on PostgreSQL several relays (one per process) share the work with
``FOR UPDATE SKIP LOCKED`` (each batch in order; batches of two relays may interleave).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, event, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Context, Event
from citybase.bus.base import PublishError, new_id
from citybase.core.timeutil import as_utc, utcnow
from citybase.kernel.models import OutboxEvent, ProcessedEvent
from citybase.storage.db import make_sessionmaker

log = logging.getLogger("citybase.kernel.outbox")

CONTEXT = "citybase.context"  # session.info key: a Context, or a callable returning one
_QUEUED = "citybase.outbox.queued"  # session.info key: this transaction wrote outbox rows

ContextSource = Context | Callable[[], Context]


def bind_context(session: Session, context: ContextSource) -> None:
    """Make ``context`` (or the callable that gives it, read when an event is queued) the session's context."""
    session.info[CONTEXT] = context


def context_of(session: Session) -> Context:
    """The context bound to the session, or a fresh one (no user) when none was bound."""
    ctx = session.info.get(CONTEXT)
    if callable(ctx):
        ctx = ctx()
    if ctx is None:
        ctx = Context()
        session.info[CONTEXT] = ctx  # every event of one unbound session shares one context
    return ctx


def queue(session: Session, subject: str, data: dict[str, Any]) -> Event:
    """Write the event into the session's transaction; the relay publishes it after the commit, never if the
    transaction rolls back. Does not flush or commit."""
    ctx = context_of(session)
    now = utcnow()
    ev = Event(subject=subject, data=data, context=ctx, time=now.isoformat())
    session.add(OutboxEvent(event_id=ev.id, subject=subject, data=json.dumps(data, ensure_ascii=False),
                            context=json.dumps(asdict(ctx)), created_at=now))
    session.info[_QUEUED] = True
    return ev


def queue_many(session: Session, subject: str, datas: list[dict[str, Any]]) -> int:
    """:func:`queue` for many events of one subject at once: one INSERT (executemany) in the session's
    transaction, in the order given (their ``seq``), all with the session's context. For a batch of changes,
    where an ORM object per event costs more than the change it describes. Flushes the session first, so
    that events queued before keep their order. Returns how many were queued."""
    if not datas:
        return 0
    ctx = json.dumps(asdict(context_of(session)))
    now = utcnow()
    dumps = json.dumps
    rows = [{"event_id": new_id(), "subject": subject, "data": dumps(d, ensure_ascii=False), "context": ctx,
             "created_at": now} for d in datas]
    session.flush()
    session.execute(insert(OutboxEvent.__table__), rows)
    session.info[_QUEUED] = True
    return len(rows)


def depth(engine_or_session: Engine | Session) -> int:
    """How many committed events wait for the relay (a gauge for /metrics)."""
    q = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
    if isinstance(engine_or_session, Session):
        return int(engine_or_session.scalar(q) or 0)
    with Session(engine_or_session) as s:
        return int(s.scalar(q) or 0)


def oldest_waiting_age(engine: Engine) -> float | None:
    """Seconds since the oldest unpublished event was committed, or None when none waits (lag gauge)."""
    with Session(engine) as s:
        oldest = s.scalar(select(func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None)))
    return None if oldest is None else (utcnow() - as_utc(oldest)).total_seconds()


def _to_event(row: Any) -> Event:
    ctx = json.loads(row.context)
    return Event(subject=row.subject, data=json.loads(row.data),
                 context=Context(id=ctx["id"], user_id=ctx.get("user_id"), parent_id=ctx.get("parent_id")),
                 id=row.event_id, time=as_utc(row.created_at).isoformat())


# -- waking the relays of this process right after a commit that queued events --

_relays: weakref.WeakSet[Relay] = weakref.WeakSet()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_QUEUED, False):
        for relay in list(_relays):
            relay.wake()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUED, None)


class Relay(threading.Thread):
    """Publishes committed outbox rows to the bus in order, marks them, and prunes them after ``retention``.

    Woken at once by a commit in this process that queued events, it otherwise polls every ``poll`` seconds
    (commits of other processes). When the bus fails it backs off (``backoff`` doubling up to ``backoff_max``)
    and tries again, for ever: it never loses an event and never dies of a bus or database error.
    A crash between publishing and marking publishes those events again: consumers are idempotent on the
    event id, and JetStream drops the repeat within its duplicate window."""

    def __init__(self, engine: Engine, bus: Bus, *, batch: int = 200, poll: float = 1.0,
                 backoff: float = 0.2, backoff_max: float = 30.0, retention: timedelta = timedelta(days=7),
                 prune_every: float = 600.0, sessions: sessionmaker[Session] | None = None) -> None:
        super().__init__(name="citybase-relay", daemon=True)
        self.engine, self.bus = engine, bus
        self.sessions = sessions or make_sessionmaker(engine)
        self.batch, self.poll = batch, poll
        self.backoff, self.backoff_max = backoff, backoff_max
        self.retention, self.prune_every = retention, prune_every
        self._skip_locked = engine.dialect.name == "postgresql"
        self._lock = threading.Lock()  # one batch at a time per relay (the thread, or drain() from another)
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._last_prune = time.monotonic()
        # Counters for /metrics.
        self.published = 0  # events published since start
        self.failures = 0  # batches that failed (bus or database away)
        self.lags: deque[float] = deque(maxlen=10_000)  # seconds from commit to publish, recent events
        _relays.add(self)

    # -- one step, usable without the thread --

    def run_once(self) -> int:
        """Publish one batch of waiting events, oldest first, and mark them; returns how many were published.
        Raises what the bus or database raised (the rows published before are marked)."""
        with self._lock:
            if self._skip_locked:
                return self._batch_locked()
            return self._batch_unlocked()

    def drain(self) -> int:
        """Publish until nothing waits; returns how many were published."""
        total = 0
        while n := self.run_once():
            total += n
        return total

    def prune(self) -> int:
        """Delete published events and processed-event records older than the retention; returns the count."""
        cutoff = utcnow() - self.retention
        with self.sessions() as s:
            n = s.execute(delete(OutboxEvent).where(OutboxEvent.published_at < cutoff)).rowcount or 0
            n += s.execute(delete(ProcessedEvent).where(ProcessedEvent.processed_at < cutoff)).rowcount or 0
            s.commit()
        return n

    def lag_p99(self) -> float | None:
        """The 99th percentile of commit-to-publish seconds over recent events, or None before the first."""
        lags = sorted(self.lags)
        return lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None

    def _waiting(self) -> Any:
        return (select(OutboxEvent.seq, OutboxEvent.event_id, OutboxEvent.subject, OutboxEvent.data,
                       OutboxEvent.context, OutboxEvent.created_at)
                .where(OutboxEvent.published_at.is_(None)).order_by(OutboxEvent.seq).limit(self.batch))

    def _batch_locked(self) -> int:
        # PostgreSQL: the rows stay locked while they are published, so another relay skips them.
        with self.sessions() as s:
            rows = s.execute(self._waiting().with_for_update(skip_locked=True)).all()
            return self._publish_and_mark(s, rows)

    def _batch_unlocked(self) -> int:
        # SQLite: read in one transaction and mark in another; holding the read snapshot into the write would
        # fail with SQLITE_BUSY_SNAPSHOT whenever a request committed meanwhile.
        with self.sessions() as s:
            rows = s.execute(self._waiting()).all()
            s.rollback()
            return self._publish_and_mark(s, rows)

    def _publish_and_mark(self, s: Session, rows: list[Any]) -> int:
        if not rows:
            s.commit()
            return 0
        n = len(rows)
        try:
            self.bus.publish_events([_to_event(row) for row in rows])
        except PublishError as exc:
            n = exc.published  # mark what is stored; the rest is published again next time
            raise exc.cause from exc
        finally:
            if n:
                now = utcnow()
                s.execute(update(OutboxEvent).where(OutboxEvent.seq.in_([r.seq for r in rows[:n]]))
                          .values(published_at=now))
                self.published += n
                self.lags.extend((now - as_utc(r.created_at)).total_seconds() for r in rows[:n])
            s.commit()
        return n

    # -- the thread --

    def wake(self) -> None:
        """Look for events now instead of at the next poll."""
        self._wake.set()

    def run(self) -> None:
        delay = self.backoff
        while not self._halt.is_set():
            self._wake.clear()
            try:
                n = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the bus or database is away: wait and try again
                self.failures += 1
                log.warning("outbox relay: %s: %s; retrying in %.1f s", type(exc).__name__, exc, delay)
                self._halt.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = self.backoff
            if time.monotonic() - self._last_prune > self.prune_every:
                self._last_prune = time.monotonic()
                try:
                    self.prune()
                except Exception as exc:  # noqa: BLE001 - pruning waits for the next round
                    log.warning("outbox prune: %s: %s", type(exc).__name__, exc)
            if n < self.batch:
                self._wake.wait(self.poll)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current batch."""
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
