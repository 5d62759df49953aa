"""Background work of the incident loop, each a durable consumer on the bus or a timer:

* alarms: ``citybase.iot.alarm.*`` events become incidents (alarm type → category);
* webhooks: every ``citybase.ops.>`` event is POSTed to the subscribed department systems, with
  retries (the bus redelivers) and a delivery log;
* supervision: overdue incidents raise 督办 once a minute.

A message that cannot be handled for a reason in the message itself is rejected to the
dead-letter store with that reason; a transient failure is retried, never looped forever."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Context, Delivery
from citybase.kernel import idempotency
from citybase.ops import flows
from citybase.ops.flows import Reject
from citybase.ops.intake.alarms import ALARMS, handle_alarm
from citybase.ops.notifications.service import deliver_webhooks, forget_webhooks
from citybase.ops.settings import ops_settings
from citybase.ops.workflow import service
from citybase.storage.db import make_sessionmaker

__all__ = ["Consumer", "Reject", "Supervisor", "alarm_consumer", "deliver_webhooks", "forget_webhooks",
           "handle_alarm", "webhook_consumer"]
log = logging.getLogger("citybase.ops.workers")
OPS_EVENTS = "citybase.ops.>"


class Consumer(threading.Thread):
    """Pulls a durable subscription and hands each delivery to ``handle`` in its own transaction."""

    def __init__(self, name: str, bus: Bus, subjects: str, sessions: sessionmaker[Session],
                 handle: Callable[[Session, Delivery], None], ack_wait: float = 30.0) -> None:
        super().__init__(name=f"citybase-{name}", daemon=True)
        self.bus, self.sessions, self.handle = bus, sessions, handle
        self.sub = bus.subscribe(subjects, durable=name, ack_wait=ack_wait)
        self.stop_event = threading.Event()
        self.handled = 0

    def run_once(self, timeout: float = 0.5) -> int:
        """Fetch and handle one batch; returns how many deliveries were settled."""
        n = 0
        for delivery in self.sub.fetch(batch=50, timeout=timeout):
            session = self.sessions()
            try:
                self.handle(session, delivery)
                session.commit()
                flows.publish_pending(session, self.bus, delivery.event.context.child())
                delivery.ack()
            except Reject as exc:
                session.rollback()
                delivery.reject(str(exc))
            except Exception:  # noqa: BLE001 - transient: let the bus redeliver (dead-lettered after max)
                session.rollback()
                log.exception("%s failed on %s (attempt %s)", self.name, delivery.event.subject, delivery.attempt)
                delivery.nak()
            finally:
                session.close()
            n += 1
        self.handled += n
        return n

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a broken connection must not kill the worker
                log.exception("%s: fetch failed", self.name)
                self.stop_event.wait(2)

    def stop(self) -> None:
        self.stop_event.set()


def alarm_consumer(bus: Bus, sessions: sessionmaker[Session], classifier: Any = None) -> Consumer:
    """The durable consumer ``ops-alarms``: IoT alarms become incidents."""
    def handle(session: Session, d: Delivery) -> None:
        handle_alarm(session, d.event, classifier)

    return Consumer("ops-alarms", bus, ALARMS, sessions, handle)


def webhook_consumer(bus: Bus, sessions: sessionmaker[Session], post: Any = None) -> Consumer:
    """The durable consumer ``ops-webhooks``: every ops event to the subscribed department systems."""
    def handle(session: Session, d: Delivery) -> None:
        if not deliver_webhooks(session, d.event, d.attempt, max_attempts=bus.max_deliver, post=post):
            session.commit()  # keep the log of this try, then ask for a retry
            raise RuntimeError(f"webhook delivery of {d.event.id} failed (attempt {d.attempt})")

    return Consumer("ops-webhooks", bus, OPS_EVENTS, sessions, handle, ack_wait=60.0)


class Supervisor(threading.Thread):
    """Raises 督办 for overdue incidents every ``interval`` seconds, and forgets expired intake keys."""

    def __init__(self, engine: Engine, bus: Bus, interval: float | None = None) -> None:
        super().__init__(name="citybase-supervisor", daemon=True)
        self.sessions = make_sessionmaker(engine)
        self.bus = bus
        self.interval = interval if interval is not None else ops_settings().supervision_interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                with self.sessions() as session:
                    service.supervise_overdue(session=session)
                    flows.commit_and_publish(session, self.bus, Context(user_id=None))
                    idempotency.prune(session=session)  # intake keys older than 24 h
                    session.commit()
            except Exception:  # noqa: BLE001
                log.exception("supervision sweep failed")

    def stop(self) -> None:
        self.stop_event.set()
