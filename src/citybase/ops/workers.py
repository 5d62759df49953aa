"""Background work of the incident loop, each a durable consumer on the bus or a timer:

* alarms: ``citybase.iot.alarm.raised`` events become incidents (alarm type → category), ``.cleared`` ones
  notes on their timeline (``intake.alarms``);
* webhooks: every ``citybase.ops.>`` event is POSTed to the subscribed department systems, with
  retries (the bus redelivers) and a delivery log;
* supervision: overdue incidents raise 督办 once a minute, in one process at a time (a leased timer).

Consumers run on the kernel's runtime (``kernel.consumers.Consumer``: one transaction per event, idempotent
on the event id). A message that cannot be handled for a reason in the message itself is rejected to the
dead-letter store with that reason; a transient failure is retried, never looped forever."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Context, Delivery
from citybase.kernel import idempotency, outbox
from citybase.kernel.consumers import Consumer, Reject
from citybase.kernel.timers import Timer
from citybase.ops.intake.alarms import ALARMS, handle_alarm, ignores
from citybase.ops.notifications.service import deliver_webhooks, forget_webhooks
from citybase.ops.settings import ops_settings
from citybase.ops.workflow import service

__all__ = ["Consumer", "Reject", "Supervisor", "alarm_consumer", "deliver_webhooks", "forget_webhooks",
           "handle_alarm", "webhook_consumer"]
log = logging.getLogger("citybase.ops.workers")
OPS_EVENTS = "citybase.ops.>"


def alarm_consumer(bus: Bus, sessions: sessionmaker[Session], classifier: Any = None) -> Consumer:
    """The durable consumer ``ops-alarms``: raised IoT alarms become incidents, cleared ones notes on them;
    the rest is acked unread."""
    def handle(session: Session, d: Delivery) -> None:
        handle_alarm(session, d.event, classifier)

    return Consumer("ops-alarms", bus, ALARMS, sessions, handle, skip=lambda session, event: ignores(event))


def webhook_consumer(bus: Bus, sessions: sessionmaker[Session], post: Any = None) -> Consumer:
    """The durable consumer ``ops-webhooks``: every ops event to the subscribed department systems."""
    def handle(session: Session, d: Delivery) -> None:
        if not deliver_webhooks(session, d.event, d.attempt, max_attempts=bus.max_deliver, post=post):
            session.commit()  # keep the log of this try, then ask for a retry
            raise RuntimeError(f"webhook delivery of {d.event.id} failed (attempt {d.attempt})")

    return Consumer("ops-webhooks", bus, OPS_EVENTS, sessions, handle, ack_wait=60.0)


class Supervisor(Timer):
    """Raises 督办 for overdue incidents every ``interval`` seconds, and forgets expired intake keys, in one
    process of the deployment at a time (the holder of the ``ops-supervision`` lease)."""

    LEASE = "ops-supervision"

    def __init__(self, engine: Engine, bus: Bus, interval: float | None = None, **timer: Any) -> None:
        super().__init__(self.LEASE, self.sweep, engine=engine,
                         interval=interval if interval is not None else ops_settings().supervision_interval, **timer)
        self.bus = bus

    def sweep(self) -> int:
        """One sweep in its own transaction (its events through the outbox); returns how many it raised."""
        with self.sessions() as session:
            outbox.bind_context(session, Context(user_id=None))
            raised = service.supervise_overdue(session=session)
            session.commit()
            idempotency.prune(session=session)  # intake keys older than 24 h
            session.commit()
        return len(raised)
