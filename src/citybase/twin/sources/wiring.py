"""What the twin's descriptor (``twin/domain.py``) takes from the subscriptions to registrations, wired as the
entity subscriptions' (``twin.subscriptions.wiring``):

* ``twin-csource-subscriptions`` follows ``citybase.twin.registration_changed`` and queues one notification per
  subscription to registrations whose view of the registration changed (``notifying.match_change``);
* ``twin-csource-notify`` follows ``citybase.twin.csource_notification`` and sends each (``notifying.deliver``,
  the entity subscriptions' notifier and delivery record): a failed attempt is counted, then retried with a
  back-off of 10, 20, 40 … s (registrations change seldom and nobody waits on these within the second) until
  the bus's ``max_deliver``;
* ``twin-csource-periodic`` notifies the periodic ones (timeInterval) that are due, each second, in the lease
  holder.

Both consumers are durable and idempotent on the event id; nothing here imports a router or service until it
runs."""

from __future__ import annotations

from typing import Any

from citybase.kernel.consumers import Reject, exponential
from citybase.kernel.domain import ConsumerSpec, TimerSpec
from citybase.twin.sources.events import CSOURCE_NOTIFICATION, REGISTRATION_CHANGED
from citybase.twin.subscriptions.wiring import contexts, queue_periodic, send

__all__ = ["CONSUMERS", "TIMERS"]


def match(session: Any, delivery: Any, runtime: Any) -> None:
    """twin-csource-subscriptions: the notifications a registration change fires, queued in this transaction."""
    from pydantic import ValidationError

    from citybase.twin.sources import notifying

    try:
        notifying.match_change(session=session, change=delivery.event.data, contexts=contexts(runtime))
    except ValidationError as exc:
        raise Reject(f"not a registration_changed event: {str(exc)[:300]}") from None


def never_subscribed(session: Any, event: Any, runtime: Any) -> bool:
    """twin-csource-subscriptions skips (one read, no write) the changes of a tenant with no subscription to
    registrations."""
    from citybase.twin.sources import notifying

    return notifying.never_subscribed(session=session, change=event.data)


def deliver(session: Any, delivery: Any, runtime: Any) -> None:
    """twin-csource-notify: one notification sent, its attempt counted in the subscription's record."""
    from citybase.twin.sources import notifying

    send(session, delivery, runtime, notifying.deliver, "csource notification")


def periodic(runtime: Any) -> None:
    """twin-csource-periodic: the due periodic notifications, queued in one transaction."""
    from citybase.twin.sources import notifying

    queue_periodic(runtime, notifying.notify_periodic)


CONSUMERS = (
    ConsumerSpec("twin-csource-subscriptions", REGISTRATION_CHANGED, match, skip=never_subscribed),
    ConsumerSpec("twin-csource-notify", CSOURCE_NOTIFICATION, deliver, ack_wait=60.0,
                 retry_delay=exponential(10.0, 600.0)),
)
TIMERS = (TimerSpec("twin-csource-periodic", 1.0, periodic),)
