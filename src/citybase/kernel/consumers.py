"""Durable consumers: each delivery handled in one transaction, once per event id however often it arrives.

The handler's work and a ``kernel_processed(consumer, event_id)`` row commit together; a delivery whose id is
already recorded for this consumer is acked and skipped (a redelivery after a lost ack, a re-publication by a
relay that crashed before marking, two processes racing on one event). Events the handler queues with
``kernel.outbox.queue`` carry the delivery's child context. A message wrong in itself (:class:`Reject`) goes
to the dead letters with its reason; any other failure is nak'ed for redelivery (after ``retry_delay``),
dead-lettered by the bus after ``max_deliver`` attempts.

A consumer may say which events it has nothing to do with (``skip(session, event)``, a read-only check such as
"the tenant has no subscriptions"): those are acked after that read alone, with no write transaction and no
``kernel_processed`` row, so a busy stream of events nobody needs does not queue on the database's writer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Delivery, Event
from citybase.core.timeutil import utcnow
from citybase.kernel import outbox
from citybase.kernel.models import ProcessedEvent

log = logging.getLogger("citybase.kernel.consumers")


class Reject(Exception):
    """The message itself is wrong; keep it aside with this reason."""


def already_processed(session: Session, consumer: str, event_id: str) -> bool:
    """True when ``consumer`` has committed its handling of ``event_id``."""
    return session.scalar(select(ProcessedEvent.id).where(ProcessedEvent.consumer == consumer,
                                                          ProcessedEvent.event_id == event_id)) is not None


class Consumer(threading.Thread):
    """Pulls a durable subscription and hands each new event to ``handle(session, delivery)`` in its own
    transaction, committed by the consumer together with the record that the event was processed.

    ``retry_delay(attempt)`` is how long a failed delivery waits before it comes back (0: at once)."""

    def __init__(self, name: str, bus: Bus, subjects: str, sessions: sessionmaker[Session],
                 handle: Callable[[Session, Delivery], None], ack_wait: float = 30.0,
                 retry_delay: Callable[[int], float] | None = None,
                 skip: Callable[[Session, Event], bool] | None = None) -> None:
        super().__init__(name=f"citybase-{name}", daemon=True)
        self.consumer = name
        self.bus, self.sessions, self.handle = bus, sessions, handle
        self.retry_delay = retry_delay or (lambda attempt: 0.0)
        self.skip = skip
        self.sub = bus.subscribe(subjects, durable=name, ack_wait=ack_wait)
        self.stop_event = threading.Event()
        self.handled = 0  # deliveries settled (handled, skipped, rejected or nak'ed)
        self.duplicates = 0  # deliveries skipped because the event was already processed
        self.skipped = 0  # deliveries acked because the handler has nothing to do with them (``skip``)

    def run_once(self, timeout: float = 0.5) -> int:
        """Fetch and handle one batch; returns how many deliveries were settled. The ``skip`` checks of one
        batch share one read-only session (``skip`` may keep what it read in ``session.info`` for the rest
        of the batch: every event of it was committed before the batch was fetched)."""
        n = 0
        deliveries = self.sub.fetch(batch=50, timeout=timeout)
        if self.skip is not None and deliveries:
            self._skip_session = self.sessions()
        try:
            for delivery in deliveries:
                self.process(delivery)
                n += 1
        finally:
            skip_session, self._skip_session = self._skip_session, None
            if skip_session is not None:
                skip_session.close()
        self.handled += n
        return n

    _skip_session: Session | None = None

    def _skipped(self, event: Event) -> bool:
        if self.skip is None:
            return False
        if self._skip_session is not None:
            return self.skip(self._skip_session, event)
        with self.sessions() as s:
            return self.skip(s, event)

    def process(self, delivery: Delivery) -> None:
        """Handle one delivery once per event id (see the module doc), then settle it."""
        event = delivery.event
        try:
            skipped = self._skipped(event)
        except Exception:  # noqa: BLE001 - the check failed (the database away): redeliver, as a failed handling
            log.exception("%s: skip check failed on %s", self.name, event.subject)
            delivery.nak(delay=self.retry_delay(delivery.attempt))
            return
        if skipped:
            self.skipped += 1
            delivery.ack()
            return
        session = self.sessions()
        outbox.bind_context(session, event.context.child())
        try:
            if already_processed(session, self.consumer, event.id):
                session.rollback()
                self.duplicates += 1
                delivery.ack()
                return
            self.handle(session, delivery)
            session.add(ProcessedEvent(consumer=self.consumer, event_id=event.id, processed_at=utcnow()))
            session.commit()
        except Reject as exc:
            session.rollback()
            delivery.reject(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - transient: let the bus redeliver (dead-lettered after max)
            session.rollback()
            if isinstance(exc, IntegrityError) and already_processed(session, self.consumer, event.id):
                session.rollback()
                self.duplicates += 1  # another process handled it meanwhile; its work stands, ours is undone
                delivery.ack()
                return
            log.exception("%s failed on %s (attempt %s)", self.name, event.subject, delivery.attempt)
            delivery.nak(delay=self.retry_delay(delivery.attempt))
            return
        finally:
            session.close()
        delivery.ack()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a broken connection must not kill the worker
                log.exception("%s: fetch failed", self.name)
                self.stop_event.wait(2)

    def stop(self) -> None:
        """Stop after the current batch (unsettled deliveries come back to the next subscriber)."""
        self.stop_event.set()


class BatchConsumer(Consumer):
    """A consumer for a high-rate stream (the IoT ingest): up to ``batch`` deliveries handled together by
    ``handle(session, deliveries)`` in ONE transaction, all acked after the commit.

    No ``kernel_processed`` row is written: the handler must be idempotent itself (the IoT readings are, on
    device, attribute and time). If the batch fails, it is retried one delivery at a time, each in its own
    transaction, so one bad message costs only itself: :class:`Reject` dead-letters it, anything else
    nak's it for redelivery."""

    def __init__(self, name: str, bus: Bus, subjects: str, sessions: sessionmaker[Session],
                 handle: Callable[[Session, list[Delivery]], None], batch: int = 500, ack_wait: float = 30.0,
                 retry_delay: Callable[[int], float] | None = None, fetch_timeout: float = 0.2) -> None:
        super().__init__(name, bus, subjects, sessions, lambda s, d: None, ack_wait=ack_wait,
                         retry_delay=retry_delay)
        self.handle_batch, self.batch, self.fetch_timeout = handle, batch, fetch_timeout
        self.batches = 0

    def run_once(self, timeout: float | None = None) -> int:
        deliveries = self.sub.fetch(batch=self.batch, timeout=self.fetch_timeout if timeout is None else timeout)
        if deliveries:
            self.process_batch(deliveries)
            self.batches += 1
        self.handled += len(deliveries)
        return len(deliveries)

    def _attempt(self, deliveries: list[Delivery]) -> BaseException | None:
        session = self.sessions()
        outbox.bind_context(session, deliveries[0].event.context.child())
        try:
            self.handle_batch(session, deliveries)
            session.commit()
            return None
        except Exception as exc:  # noqa: BLE001 - settled by the caller (split, reject or nak)
            session.rollback()
            return exc
        finally:
            session.close()

    def process_batch(self, deliveries: list[Delivery]) -> None:
        """Handle, commit, ack; on failure one by one (see the class doc)."""
        exc = self._attempt(deliveries)
        if exc is None:  # acked together (a wrapper, such as the runtime's metrics, exposes .inner)
            self.sub.ack_all([getattr(d, "inner", d) for d in deliveries])
            for d in deliveries:
                note = getattr(d, "note_acked", None)
                if note is not None:
                    note()
            return
        if len(deliveries) > 1:
            log.warning("%s: a batch of %d failed (%s: %s); handling them one by one", self.name, len(deliveries),
                        type(exc).__name__, exc)
            for d in deliveries:
                self.process_batch([d])
            return
        d = deliveries[0]
        if isinstance(exc, Reject):
            d.reject(str(exc))
            return
        log.error("%s failed on %s (attempt %s): %s", self.name, d.event.subject, d.attempt, exc, exc_info=exc)
        d.nak(delay=self.retry_delay(d.attempt))

    def process(self, delivery: Delivery) -> None:
        self.process_batch([delivery])


def exponential(base: float = 1.0, cap: float = 60.0) -> Callable[[int], float]:
    """A retry delay doubling from ``base`` seconds with each attempt, at most ``cap``."""
    return lambda attempt: min(base * 2 ** max(attempt - 1, 0), cap)
